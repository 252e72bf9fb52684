// The per-step log tables: metrics (+ latest_metrics), evals, comm, expert_load. Each Log*
// call is one transaction with one prepared statement reused for every row: a batch of a
// thousand rows costs one commit, not a thousand.
#include <string>

#include "harness/store/store.h"
#include "harness/store/store_impl.h"

namespace moebench {
namespace {

void RequireRunId(const std::string& path, const char* operation, const std::string& run_id) {
  if (run_id.empty()) throw StoreError(path + ": " + operation + ": a row has an empty run_id");
}

MetricRow ReadMetric(const Statement& statement) {
  MetricRow row;
  row.step = statement.Int64(0);
  row.wall_s = statement.Double(1);
  row.key = statement.Text(2);
  row.value = statement.Double(3);
  return row;
}

}  // namespace

// ---- metrics --------------------------------------------------------------------------------

void Store::LogMetrics(const std::string& run_id, const std::vector<MetricRow>& rows) {
  Connection& connection = impl_->Writer("log metrics");
  RequireRunId(impl_->path, "log metrics", run_id);
  for (const MetricRow& row : rows) {
    if (row.key.empty()) {
      throw StoreError(impl_->path + ": log metrics: run " + run_id + " step " +
                       std::to_string(row.step) + ": empty metric key");
    }
  }
  if (rows.empty()) return;
  Transaction transaction(connection);
  CachedStatement history = connection.Prepare(
      "INSERT INTO metrics (run_id, step, wall_s, key, value) VALUES (?1, ?2, ?3, ?4, ?5) "
      "ON CONFLICT (run_id, key, step) DO UPDATE SET wall_s = excluded.wall_s, "
      "value = excluded.value");
  // ">=": re-logging the latest step (a resumed run) refreshes it.
  CachedStatement latest = connection.Prepare(
      "INSERT INTO latest_metrics (run_id, key, step, wall_s, value) "
      "VALUES (?1, ?4, ?2, ?3, ?5) ON CONFLICT (run_id, key) DO UPDATE SET "
      "step = excluded.step, wall_s = excluded.wall_s, value = excluded.value "
      "WHERE excluded.step >= latest_metrics.step");
  for (const MetricRow& row : rows) {
    Statement* statements[] = {&*history, &*latest};
    for (Statement* statement : statements) {
      statement->Reset();
      statement->BindText(1, run_id);
      statement->BindInt64(2, row.step);
      statement->BindDouble(3, row.wall_s);
      statement->BindText(4, row.key);
      statement->BindDouble(5, row.value);
      statement->Run();
    }
  }
  transaction.Commit();
}

std::map<std::string, MetricRow> Store::LatestMetrics(const std::string& run_id) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT step, wall_s, key, value FROM latest_metrics WHERE run_id = ?1");
  statement->BindText(1, run_id);
  std::map<std::string, MetricRow> latest;
  while (statement->Step()) {
    MetricRow row = ReadMetric(*statement);
    latest[row.key] = row;
  }
  return latest;
}

std::vector<MetricRow> Store::MetricHistory(const std::string& run_id,
                                            const std::string& key) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT step, wall_s, key, value FROM metrics WHERE run_id = ?1 AND key = ?2 "
      "ORDER BY step");
  statement->BindText(1, run_id);
  statement->BindText(2, key);
  std::vector<MetricRow> history;
  while (statement->Step()) history.push_back(ReadMetric(*statement));
  return history;
}

// ---- evals ----------------------------------------------------------------------------------

void Store::LogEvals(const std::vector<EvalRow>& rows) {
  Connection& connection = impl_->Writer("log evals");
  for (const EvalRow& row : rows) RequireRunId(impl_->path, "log evals", row.run_id);
  if (rows.empty()) return;
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO evals (run_id, step, wall_s, split, lang, k, bleu, chrf, signature, decoding, "
      "loss, n_sentences) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
      "ON CONFLICT (run_id, step, split, lang, k) DO UPDATE SET wall_s = excluded.wall_s, "
      "bleu = excluded.bleu, chrf = excluded.chrf, signature = excluded.signature, "
      "decoding = excluded.decoding, loss = excluded.loss, n_sentences = excluded.n_sentences");
  for (const EvalRow& row : rows) {
    statement->Reset();
    statement->BindText(1, row.run_id);
    statement->BindInt64(2, row.step);
    statement->BindDouble(3, row.wall_s);
    statement->BindText(4, row.split);
    statement->BindText(5, row.lang);
    statement->BindInt64(6, row.k);
    statement->BindDouble(7, row.bleu);
    statement->BindOptionalDouble(8, row.chrf);
    statement->BindText(9, row.signature);
    statement->BindText(10, row.decoding);
    statement->BindOptionalDouble(11, row.loss);
    statement->BindInt64(12, row.n_sentences);
    statement->Run();
  }
  transaction.Commit();
}

std::vector<EvalRow> Store::Evals(const std::string& run_id) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT run_id, step, wall_s, split, lang, k, bleu, chrf, signature, decoding, loss, "
      "n_sentences FROM evals WHERE run_id = ?1 ORDER BY step, split, lang, k");
  statement->BindText(1, run_id);
  std::vector<EvalRow> rows;
  while (statement->Step()) {
    EvalRow row;
    row.run_id = statement->Text(0);
    row.step = statement->Int64(1);
    row.wall_s = statement->Double(2);
    row.split = statement->Text(3);
    row.lang = statement->Text(4);
    row.k = static_cast<int>(statement->Int64(5));
    row.bleu = statement->Double(6);
    row.chrf = statement->OptionalDouble(7);
    row.signature = statement->Text(8);
    row.decoding = statement->Text(9);
    row.loss = statement->OptionalDouble(10);
    row.n_sentences = statement->Int64(11);
    rows.push_back(row);
  }
  return rows;
}

// ---- comm -----------------------------------------------------------------------------------

void Store::LogComm(const std::vector<CommRow>& rows) {
  Connection& connection = impl_->Writer("log comm");
  for (const CommRow& row : rows) RequireRunId(impl_->path, "log comm", row.run_id);
  if (rows.empty()) return;
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO comm (run_id, step, layer, phase, calls, bytes_local, bytes_intra_node, "
      "bytes_inter_node, wire_bytes, wire_intra_node, wire_inter_node, ms, modeled_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
      "ON CONFLICT (run_id, step, layer, phase) DO UPDATE SET calls = excluded.calls, "
      "bytes_local = excluded.bytes_local, bytes_intra_node = excluded.bytes_intra_node, "
      "bytes_inter_node = excluded.bytes_inter_node, wire_bytes = excluded.wire_bytes, "
      "wire_intra_node = excluded.wire_intra_node, wire_inter_node = excluded.wire_inter_node, "
      "ms = excluded.ms, modeled_ms = excluded.modeled_ms");
  for (const CommRow& row : rows) {
    statement->Reset();
    statement->BindText(1, row.run_id);
    statement->BindInt64(2, row.step);
    statement->BindInt64(3, row.layer);
    statement->BindText(4, row.phase);
    statement->BindInt64(5, row.calls);
    statement->BindInt64(6, row.bytes_local);
    statement->BindInt64(7, row.bytes_intra_node);
    statement->BindInt64(8, row.bytes_inter_node);
    statement->BindInt64(9, row.wire_bytes);
    statement->BindInt64(10, row.wire_intra_node);
    statement->BindInt64(11, row.wire_inter_node);
    statement->BindDouble(12, row.ms);
    statement->BindDouble(13, row.modeled_ms);
    statement->Run();
  }
  transaction.Commit();
}

std::vector<CommRow> Store::Comm(const std::string& run_id) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT run_id, step, layer, phase, calls, bytes_local, bytes_intra_node, "
      "bytes_inter_node, wire_bytes, wire_intra_node, wire_inter_node, ms, modeled_ms FROM comm "
      "WHERE run_id = ?1 ORDER BY step, layer, phase");
  statement->BindText(1, run_id);
  std::vector<CommRow> rows;
  while (statement->Step()) {
    CommRow row;
    row.run_id = statement->Text(0);
    row.step = statement->Int64(1);
    row.layer = static_cast<int>(statement->Int64(2));
    row.phase = statement->Text(3);
    row.calls = statement->Int64(4);
    row.bytes_local = statement->Int64(5);
    row.bytes_intra_node = statement->Int64(6);
    row.bytes_inter_node = statement->Int64(7);
    row.wire_bytes = statement->Int64(8);
    row.wire_intra_node = statement->Int64(9);
    row.wire_inter_node = statement->Int64(10);
    row.ms = statement->Double(11);
    row.modeled_ms = statement->Double(12);
    rows.push_back(row);
  }
  return rows;
}

// ---- expert load ----------------------------------------------------------------------------

void Store::LogExpertLoad(const std::vector<ExpertLoadRow>& rows) {
  Connection& connection = impl_->Writer("log expert load");
  for (const ExpertLoadRow& row : rows) RequireRunId(impl_->path, "log expert load", row.run_id);
  if (rows.empty()) return;
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO expert_load (run_id, step, layer, expert, tokens, dropped) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_id, step, layer, expert) "
      "DO UPDATE SET tokens = excluded.tokens, dropped = excluded.dropped");
  for (const ExpertLoadRow& row : rows) {
    statement->Reset();
    statement->BindText(1, row.run_id);
    statement->BindInt64(2, row.step);
    statement->BindInt64(3, row.layer);
    statement->BindInt64(4, row.expert);
    statement->BindInt64(5, row.tokens);
    statement->BindInt64(6, row.dropped);
    statement->Run();
  }
  transaction.Commit();
}

std::vector<ExpertLoadRow> Store::ExpertLoad(const std::string& run_id) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT run_id, step, layer, expert, tokens, dropped FROM expert_load WHERE run_id = ?1 "
      "ORDER BY step, layer, expert");
  statement->BindText(1, run_id);
  std::vector<ExpertLoadRow> rows;
  while (statement->Step()) {
    ExpertLoadRow row;
    row.run_id = statement->Text(0);
    row.step = statement->Int64(1);
    row.layer = static_cast<int>(statement->Int64(2));
    row.expert = static_cast<int>(statement->Int64(3));
    row.tokens = statement->Int64(4);
    row.dropped = statement->Int64(5);
    rows.push_back(row);
  }
  return rows;
}

// ---- per-sentence outputs -------------------------------------------------------------------

void Store::LogOutputs(const std::vector<OutputRow>& rows) {
  Connection& connection = impl_->Writer("log outputs");
  for (const OutputRow& row : rows) RequireRunId(impl_->path, "log outputs", row.run_id);
  if (rows.empty()) return;
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO outputs (run_id, step, split, lang, k, idx, hyp, ref) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (run_id, step, split, k, idx) "
      "DO UPDATE SET lang = excluded.lang, hyp = excluded.hyp, ref = excluded.ref");
  for (const OutputRow& row : rows) {
    statement->Reset();
    statement->BindText(1, row.run_id);
    statement->BindInt64(2, row.step);
    statement->BindText(3, row.split);
    statement->BindText(4, row.lang);
    statement->BindInt64(5, row.k);
    statement->BindInt64(6, row.idx);
    statement->BindText(7, row.hyp);
    statement->BindText(8, row.ref);
    statement->Run();
  }
  transaction.Commit();
}

std::vector<OutputRow> Store::Outputs(const std::string& run_id, const std::string& split,
                                      int k) const {
  CachedStatement statement = impl_->Reader().Prepare(
      "SELECT run_id, step, split, lang, k, idx, hyp, ref FROM outputs "
      "WHERE run_id = ?1 AND split = ?2 AND k = ?3 ORDER BY step, idx");
  statement->BindText(1, run_id);
  statement->BindText(2, split);
  statement->BindInt64(3, k);
  std::vector<OutputRow> rows;
  while (statement->Step()) {
    OutputRow row;
    row.run_id = statement->Text(0);
    row.step = statement->Int64(1);
    row.split = statement->Text(2);
    row.lang = statement->Text(3);
    row.k = static_cast<int>(statement->Int64(4));
    row.idx = statement->Int64(5);
    row.hyp = statement->Text(6);
    row.ref = statement->Text(7);
    rows.push_back(row);
  }
  return rows;
}

// ---- resume ---------------------------------------------------------------------------------

void Store::DeleteRunDataAfter(const std::string& run_id, int64_t step) {
  Connection& connection = impl_->Writer("delete run data after a step");
  Transaction transaction(connection);
  const char* const deletes[] = {
      "DELETE FROM metrics WHERE run_id = ?1 AND step > ?2",
      "DELETE FROM evals WHERE run_id = ?1 AND step > ?2",
      "DELETE FROM comm WHERE run_id = ?1 AND step > ?2",
      "DELETE FROM expert_load WHERE run_id = ?1 AND step > ?2",
      "DELETE FROM outputs WHERE run_id = ?1 AND step > ?2",
  };
  for (const char* sql : deletes) {
    CachedStatement statement = connection.Prepare(sql);
    statement->BindText(1, run_id);
    statement->BindInt64(2, step);
    statement->Run();
  }
  {
    CachedStatement clear = connection.Prepare("DELETE FROM latest_metrics WHERE run_id = ?1");
    clear->BindText(1, run_id);
    clear->Run();
  }
  // (run_id, key, step) is unique, so the max step picks exactly one row per key.
  CachedStatement rebuild = connection.Prepare(
      "INSERT INTO latest_metrics (run_id, key, step, wall_s, value) "
      "SELECT m.run_id, m.key, m.step, m.wall_s, m.value FROM metrics AS m "
      "WHERE m.run_id = ?1 AND m.step = (SELECT MAX(step) FROM metrics "
      "WHERE run_id = m.run_id AND key = m.key)");
  rebuild->BindText(1, run_id);
  rebuild->Run();
  transaction.Commit();
}

}  // namespace moebench

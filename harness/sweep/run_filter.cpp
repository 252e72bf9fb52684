#include "harness/sweep/run_filter.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>

#include "harness/spec/run_spec.h"
#include "methods/method.h"

namespace moebench {
namespace {

// Bounds that keep a filter far inside SQLite's expression depth (1000) and the parser's own
// recursion: parentheses and NOT nested at most this deep, and at most this many comparisons.
constexpr int kMaxFilterDepth = 32;
constexpr int kMaxFilterTerms = 256;

enum class TokenKind { kIdent, kString, kNumber, kOp, kLParen, kRParen, kComma, kEnd };

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;                // identifier (unquoted parts joined by '.'), string value, op
  std::vector<std::string> parts;  // identifier parts
  bool keyword_candidate = false;  // a single unquoted part: may be AND, OR, ...
  double number = 0;
  bool integer = false;
  size_t pos = 0;
};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

class Lexer {
 public:
  Lexer(const std::string& text, const std::string& what) : text_(text), what_(what) {}

  // The message, the text and a caret under `pos`; a long text is cut to a window around it.
  [[noreturn]] void Fail(size_t pos, const std::string& msg) const {
    constexpr size_t kContext = 60;
    std::string shown = text_;
    size_t caret = pos;
    if (text_.size() > 2 * kContext) {
      const size_t begin = pos > kContext ? pos - kContext : 0;
      shown = (begin > 0 ? "..." : "") + text_.substr(begin, 2 * kContext) +
              (begin + 2 * kContext < text_.size() ? "..." : "");
      caret = pos - begin + (begin > 0 ? 3 : 0);
    }
    throw std::invalid_argument(what_ + ": " + msg + " at position " + std::to_string(pos + 1) +
                                "\n  " + shown + "\n  " + std::string(caret, ' ') + "^");
  }

  std::vector<Token> Tokens() {
    std::vector<Token> out;
    size_t i = 0;
    const size_t n = text_.size();
    while (true) {
      while (i < n && std::isspace(static_cast<unsigned char>(text_[i]))) i++;
      Token t;
      t.pos = i;
      if (i >= n) {
        out.push_back(t);
        return out;
      }
      const char c = text_[i];
      if (c == '(' || c == ')' || c == ',') {
        t.kind = c == '(' ? TokenKind::kLParen : c == ')' ? TokenKind::kRParen : TokenKind::kComma;
        t.text = std::string(1, c);
        i++;
      } else if (c == '\'' || c == '"') {
        t.kind = TokenKind::kString;
        i++;
        while (true) {
          if (i >= n) Fail(t.pos, "unterminated string");
          if (text_[i] == c) {
            if (i + 1 < n && text_[i + 1] == c) {
              t.text += c;
              i += 2;
              continue;
            }
            i++;
            break;
          }
          t.text += text_[i++];
        }
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.' ||
                 ((c == '-' || c == '+') && i + 1 < n &&
                  (std::isdigit(static_cast<unsigned char>(text_[i + 1])) ||
                   text_[i + 1] == '.'))) {
        size_t end = i + 1;
        while (end < n &&
               (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '.' ||
                ((text_[end] == '-' || text_[end] == '+') &&
                 (text_[end - 1] == 'e' || text_[end - 1] == 'E')))) {
          end++;
        }
        const std::string s = text_.substr(i, end - i);
        size_t used = 0;
        try {
          t.number = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != s.size()) Fail(i, "'" + s + "' is not a number");
        t.integer = s.find_first_of(".eE") == std::string::npos;
        t.kind = TokenKind::kNumber;
        t.text = s;
        i = end;
      } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        t.kind = TokenKind::kOp;
        std::string op(1, c);
        if (i + 1 < n && (text_[i + 1] == '=' || (c == '<' && text_[i + 1] == '>'))) {
          op += text_[i + 1];
        }
        if (op == "!") Fail(i, "expected != ");
        t.text = op == "==" ? "=" : op == "<>" ? "!=" : op;
        i += op.size();
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == '`') {
        t.kind = TokenKind::kIdent;
        bool quoted_any = false;
        while (true) {
          std::string part;
          if (i < n && text_[i] == '`') {
            const size_t close = text_.find('`', i + 1);
            if (close == std::string::npos) Fail(i, "unterminated `quoted` name");
            part = text_.substr(i + 1, close - i - 1);
            i = close + 1;
            quoted_any = true;
          } else {
            while (i < n && (std::isalnum(static_cast<unsigned char>(text_[i])) ||
                             text_[i] == '_' || text_[i] == '-')) {
              part += text_[i++];
            }
          }
          if (part.empty()) Fail(i, "expected a name after '.'");
          t.parts.push_back(part);
          if (i < n && text_[i] == '.') {
            i++;
            continue;
          }
          break;
        }
        for (const std::string& p : t.parts) t.text += (t.text.empty() ? "" : ".") + p;
        t.keyword_candidate = !quoted_any && t.parts.size() == 1;
      } else {
        Fail(i, std::string("unexpected character '") + c + "'");
      }
      out.push_back(t);
    }
  }

 private:
  const std::string& text_;
  std::string what_;
};

// The SQL for a key and its parameters.
struct Operand {
  std::string sql;
  std::vector<Store::SqlParam> params;
  bool numeric = false;  // a numeric column: compare as is
};

Operand KeyOperand(const Token& t, const Lexer& lexer) {
  static const std::map<std::string, std::pair<std::string, bool>> kColumns = {
      {"method", {"runs.method", false}},
      {"size", {"runs.size", false}},
      {"seed", {"runs.seed", true}},
      {"status", {"runs.status", false}},
      {"id", {"runs.id", false}},
      {"run", {"runs.id", false}},
      {"run_id", {"runs.id", false}},
      {"sweep", {"runs.sweep_id", false}},
      {"sweep_id", {"runs.sweep_id", false}},
      {"host", {"runs.host", false}},
      {"error", {"runs.error", false}},
      {"started_at", {"runs.started_at", false}},
      {"ended_at", {"runs.ended_at", false}},
      {"params_total", {"runs.params_total", true}},
      {"params_active", {"runs.params_active", true}},
      {"threads", {"runs.threads", true}},
      {"exit_code", {"runs.exit_code", true}},
  };
  Operand o;
  const std::string head = t.parts[0];
  if (t.parts.size() == 1) {
    auto it = kColumns.find(head);
    if (it == kColumns.end()) {
      std::string known;
      for (const auto& [name, unused] : kColumns) known += (known.empty() ? "" : ", ") + name;
      lexer.Fail(t.pos, "unknown key '" + head + "' (columns: " + known +
                            "; or params.<name>, metrics.<name>)");
    }
    o.sql = it->second.first;
    o.numeric = it->second.second;
    return o;
  }
  std::string rest;
  for (size_t i = 1; i < t.parts.size(); i++) rest += (i == 1 ? "" : ".") + t.parts[i];
  if (head == "metrics") {
    o.sql = "(SELECT lm.value FROM latest_metrics lm WHERE lm.run_id = runs.id AND lm.key = ?)";
    o.params.push_back(rest);
    o.numeric = true;
    return o;
  }
  if (head == "params") {
    // A run-spec field, "knobs.<knob>", or a bare knob name.
    const nlohmann::json fields = RunSpec::FieldDefaults();
    std::string path;
    auto quote = [](const std::string& s) {
      std::string q = "\"";
      for (char c : s) q += (c == '"' ? std::string("\\\"") : std::string(1, c));
      return q + "\"";
    };
    auto unknown = [&](const std::string& name) {
      lexer.Fail(t.pos, "unknown key '" + t.text + "': '" + name +
                            "' is neither a run-spec field nor a knob of any method (moebench "
                            "methods lists the knobs)");
    };
    if (t.parts.size() == 2 && fields.contains(t.parts[1]) && t.parts[1] != "knobs") {
      path = "$." + quote(t.parts[1]);
    } else if (t.parts.size() == 3 && t.parts[1] == "knobs") {
      if (!IsKnownKnob(t.parts[2])) unknown(t.parts[2]);
      path = "$.knobs." + quote(t.parts[2]);
    } else if (t.parts.size() == 2) {
      if (!IsKnownKnob(t.parts[1])) unknown(t.parts[1]);
      path = "$.knobs." + quote(t.parts[1]);
    } else {
      lexer.Fail(t.pos, "'" + t.text + "': expected params.<field> or params.<knob>");
    }
    o.sql = "json_extract(runs.spec_json, ?)";
    o.params.push_back(path);
    if (t.parts.size() == 2 && fields.contains(t.parts[1]) &&
        !RunSpec().ToJson().contains(t.parts[1])) {
      // Fields added later are stored only when they differ from their defaults.
      const nlohmann::json& def = fields.at(t.parts[1]);
      o.sql = "coalesce(json_extract(runs.spec_json, ?), " + def.dump() + ")";
    }
    return o;
  }
  lexer.Fail(t.pos, "unknown key '" + t.text +
                        "' (expected a column, params.<name> or "
                        "metrics.<name>)");
}

// A LIKE pattern (% any run, _ one character) as the GLOB pattern that matches the same text,
// case-sensitively: GLOB's own wildcards in the text are bracketed to stand for themselves.
std::string LikeToGlob(const std::string& like) {
  std::string glob;
  for (char c : like) {
    if (c == '%') {
      glob += '*';
    } else if (c == '_') {
      glob += '?';
    } else if (c == '*' || c == '?' || c == '[') {
      glob += std::string("[") + c + "]";
    } else {
      glob += c;
    }
  }
  return glob;
}

void Append(SqlFragment* f, const std::string& sql, const std::vector<Store::SqlParam>& params) {
  f->sql += sql;
  f->params.insert(f->params.end(), params.begin(), params.end());
}

// X as a number: numeric values as they are, text that spells a number converted, else NULL.
void AppendNumeric(SqlFragment* f, const Operand& x) {
  if (x.numeric) {
    Append(f, x.sql, x.params);
    return;
  }
  Append(f, "(CASE WHEN typeof(", {});
  Append(f, x.sql, x.params);
  Append(f, ") IN ('integer', 'real') THEN ", {});
  Append(f, x.sql, x.params);
  Append(f, " WHEN trim(", {});
  Append(f, x.sql, x.params);
  Append(f, ") <> '' AND trim(", {});
  Append(f, x.sql, x.params);
  Append(f, ") NOT GLOB '*[^0-9.eE+-]*' THEN CAST(trim(", {});
  Append(f, x.sql, x.params);
  Append(f, ") AS REAL) END)", {});
}

void AppendText(SqlFragment* f, const Operand& x) {
  Append(f, "CAST(", {});
  Append(f, x.sql, x.params);
  Append(f, " AS TEXT)", {});
}

class Parser {
 public:
  Parser(const std::string& text, const std::string& what) : lexer_(text, what) {
    tokens_ = lexer_.Tokens();
  }

  SqlFragment Filter() {
    SqlFragment f;
    if (Peek().kind == TokenKind::kEnd) lexer_.Fail(0, "empty expression");
    Or(&f);
    if (Peek().kind != TokenKind::kEnd) Unexpected("AND, OR or the end");
    return f;
  }

  SqlFragment Sort() {
    SqlFragment f;
    while (true) {
      const Token& key = Next();
      if (key.kind != TokenKind::kIdent) Unexpected(key, "a key to sort by");
      const Operand x = KeyOperand(key, lexer_);
      std::string dir = " ASC";
      if (IsKeyword("ASC") || IsKeyword("DESC")) dir = " " + Upper(Next().text);
      if (!f.sql.empty()) f.sql += ", ";
      // Runs without the value last, then numbers numerically, then text.
      Append(&f, "(", {});
      Append(&f, x.sql, x.params);
      Append(&f, " IS NULL), ", {});
      AppendNumeric(&f, x);
      Append(&f, dir + ", ", {});
      AppendText(&f, x);
      Append(&f, dir, {});
      if (Peek().kind == TokenKind::kComma) {
        Next();
        continue;
      }
      if (Peek().kind != TokenKind::kEnd) Unexpected("asc, desc, ',' or the end");
      return f;
    }
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) pos_++;
    return t;
  }
  bool IsKeyword(const char* word) const {
    return Peek().kind == TokenKind::kIdent && Peek().keyword_candidate &&
           Upper(Peek().text) == word;
  }
  [[noreturn]] void Unexpected(const Token& t, const std::string& expected) const {
    const std::string got = t.kind == TokenKind::kEnd ? "the end" : "'" + t.text + "'";
    lexer_.Fail(t.pos, "expected " + expected + ", got " + got);
  }
  [[noreturn]] void Unexpected(const std::string& expected) const { Unexpected(Peek(), expected); }

  // One level deeper (a parenthesis or a NOT); refuses past kMaxFilterDepth.
  void Enter(const Token& at) {
    if (++depth_ > kMaxFilterDepth) {
      lexer_.Fail(at.pos, "parentheses and NOT nested deeper than " +
                              std::to_string(kMaxFilterDepth) + " levels");
    }
  }

  void CountTerm(const Token& at) {
    if (++terms_ > kMaxFilterTerms) {
      lexer_.Fail(at.pos,
                  "more than " + std::to_string(kMaxFilterTerms) + " comparisons in one filter");
    }
  }

  void Or(SqlFragment* f) {
    Append(f, "(", {});
    And(f);
    while (IsKeyword("OR")) {
      Next();
      Append(f, " OR ", {});
      And(f);
    }
    Append(f, ")", {});
  }

  void And(SqlFragment* f) {
    Append(f, "(", {});
    Not(f);
    while (IsKeyword("AND")) {
      Next();
      Append(f, " AND ", {});
      Not(f);
    }
    Append(f, ")", {});
  }

  void Not(SqlFragment* f) {
    if (IsKeyword("NOT")) {
      Enter(Next());
      // NOT of an unknown (NULL) comparison is still "no match", as in SQL.
      Append(f, "NOT ", {});
      Not(f);
      depth_--;
      return;
    }
    Atom(f);
  }

  Store::SqlParam Literal(const Token& t) {
    if (t.kind == TokenKind::kString) return t.text;
    if (t.kind == TokenKind::kNumber) {
      if (t.integer && t.number == static_cast<double>(static_cast<int64_t>(t.number))) {
        return static_cast<int64_t>(t.number);
      }
      return t.number;
    }
    Unexpected(t, "a literal ('text' or a number)");
  }

  void Comparison(SqlFragment* f, const Operand& x, const std::string& op, const Token& lit) {
    const Store::SqlParam value = Literal(lit);
    const std::string sql_op = op == "!=" ? " <> " : " " + op + " ";
    if (lit.kind == TokenKind::kNumber) {
      AppendNumeric(f, x);
    } else {
      AppendText(f, x);
    }
    Append(f, sql_op + "?", {value});
  }

  void Atom(SqlFragment* f) {
    if (Peek().kind == TokenKind::kLParen) {
      Enter(Next());
      Or(f);
      if (Peek().kind != TokenKind::kRParen) Unexpected("')'");
      Next();
      depth_--;
      return;
    }
    const Token& key = Next();
    if (key.kind != TokenKind::kIdent || (key.keyword_candidate && IsReserved(key.text))) {
      Unexpected(key, "a key (method, params.<name>, metrics.<name>, ...) or '('");
    }
    CountTerm(key);
    const Operand x = KeyOperand(key, lexer_);
    if (Peek().kind == TokenKind::kOp) {
      const std::string op = Next().text;
      Comparison(f, x, op, Next());
      return;
    }
    bool negate = false;
    if (IsKeyword("IS")) {
      Next();
      if (IsKeyword("NOT")) {
        Next();
        negate = true;
      }
      if (!IsKeyword("NULL")) Unexpected("NULL");
      Next();
      Append(f, "(", {});
      Append(f, x.sql, x.params);
      Append(f, negate ? " IS NOT NULL)" : " IS NULL)", {});
      return;
    }
    if (IsKeyword("NOT")) {
      Next();
      negate = true;
    }
    if (IsKeyword("LIKE") || IsKeyword("ILIKE")) {
      const bool fold_case = IsKeyword("ILIKE");
      const std::string word = fold_case ? "ILIKE" : "LIKE";
      Next();
      const Token& pattern = Next();
      if (pattern.kind != TokenKind::kString) Unexpected(pattern, "a 'pattern' after " + word);
      // See the header: LIKE is case-sensitive (as GLOB), ILIKE folds ASCII case.
      Append(f, "(coalesce(", {});
      AppendText(f, x);
      if (fold_case) {
        Append(f, negate ? " NOT LIKE ?" : " LIKE ?", {pattern.text});
      } else {
        Append(f, negate ? " NOT GLOB ?" : " GLOB ?", {LikeToGlob(pattern.text)});
      }
      // A run without the value matches neither the pattern nor its negation.
      Append(f, ", 0))", {});
      return;
    }
    if (IsKeyword("IN")) {
      Next();
      if (Peek().kind != TokenKind::kLParen) Unexpected("'(' after IN");
      Next();
      Append(f, negate ? "NOT (" : "(", {});
      bool first = true;
      while (true) {
        if (!first) Append(f, " OR ", {});
        first = false;
        CountTerm(Peek());
        Comparison(f, x, "=", Next());
        if (Peek().kind == TokenKind::kComma) {
          Next();
          continue;
        }
        if (Peek().kind != TokenKind::kRParen) Unexpected("',' or ')'");
        Next();
        break;
      }
      Append(f, ")", {});
      return;
    }
    Unexpected(negate ? "LIKE, ILIKE or IN after NOT"
                      : "a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS)");
  }

  static bool IsReserved(const std::string& word) {
    const std::string w = Upper(word);
    return w == "AND" || w == "OR" || w == "NOT" || w == "LIKE" || w == "ILIKE" || w == "IN" ||
           w == "IS" || w == "NULL";
  }

  Lexer lexer_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int terms_ = 0;
};

}  // namespace

bool IsKnownKnob(const std::string& name) {
  for (const MethodInfo& method : MethodRegistry()) {
    for (const KnobSpec& knob : method.knobs) {
      if (knob.name == name) return true;
    }
  }
  return false;
}

SqlFragment ParseRunFilter(const std::string& where) { return Parser(where, "--where").Filter(); }

SqlFragment ParseRunSort(const std::string& sort) { return Parser(sort, "--sort").Sort(); }

std::vector<std::string> SelectRunIds(const Store& store, const std::string& sweep_id,
                                      const std::string& status, const std::string& where,
                                      const std::string& sort) {
  SqlFragment q;
  q.sql = "SELECT runs.id FROM runs WHERE 1";
  if (!sweep_id.empty()) Append(&q, " AND runs.sweep_id = ?", {sweep_id});
  if (!status.empty()) {
    ParseRunStatus(status);
    Append(&q, " AND runs.status = ?", {status});
  }
  if (!where.empty()) {
    const SqlFragment f = ParseRunFilter(where);
    Append(&q, " AND " + f.sql, f.params);
  }
  Append(&q, " ORDER BY ", {});
  if (!sort.empty()) {
    const SqlFragment s = ParseRunSort(sort);
    Append(&q, s.sql + ", ", s.params);
  }
  Append(&q, "runs.rowid", {});
  std::vector<std::string> ids;
  for (const auto& row : store.QueryWithParams(q.sql, q.params).rows) {
    if (!row.empty() && row[0]) ids.push_back(*row[0]);
  }
  return ids;
}

}  // namespace moebench

"""Reading the results database: read-only, schema-checked, into plain Python objects.

The tables and their conventions are defined in harness/store/schema.cpp (versions 1-3). The
report never writes: the file is opened with SQLite's ``mode=ro``.
"""

import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field

# The schema versions this report reads. A newer file is refused (its tables may mean
# something else); version 0 is an empty file or not a moebench database.
SUPPORTED_SCHEMA_VERSIONS = (1, 2, 3, 4)  # 2 added the outputs table, 3 comm.modeled_ms, 4 meta

# Tables and the columns the report reads from each; checked before any query so that a
# damaged or foreign file fails with the table and column named.
REQUIRED_COLUMNS = {
    "sweeps": ("id", "name", "manifest", "created_at", "git_commit", "dirty"),
    "runs": ("id", "sweep_id", "method", "size", "seed", "spec_json", "status", "started_at",
             "ended_at", "exit_code", "error", "host", "device", "world_size", "threads", "libs",
             "params_total", "params_active"),
    "metrics": ("run_id", "step", "wall_s", "key", "value"),
    "evals": ("run_id", "step", "wall_s", "split", "lang", "k", "bleu", "chrf", "signature",
              "decoding", "n_sentences"),
    "comm": ("run_id", "step", "layer", "phase", "calls", "bytes_local", "bytes_intra_node",
             "bytes_inter_node", "wire_intra_node", "wire_inter_node"),
    "expert_load": ("run_id", "step", "layer", "expert", "tokens", "dropped"),
}

# Per-sentence outputs, needed for paired bootstrap significance (written since schema 2)
# of the trainer (see reports/README.md "Significance"). Optional.
OUTPUTS_TABLE = "outputs"


class ReportError(Exception):
    """Bad input to the report: names the file and what is wrong with it."""


@dataclass
class Sweep:
    id: str
    name: str
    manifest: str
    created_at: str
    git_commit: str
    dirty: bool


@dataclass
class Run:
    id: str
    sweep_id: str
    method: str
    size: str
    seed: int
    spec: dict
    status: str
    started_at: str
    ended_at: str
    exit_code: object
    error: str
    host: str
    device: str
    world_size: int
    threads: int
    libs: dict
    params_total: int
    params_active: int
    # key -> [(step, wall_s, value)] by increasing step; value None where NaN was logged.
    metrics: dict = field(default_factory=dict)
    # dicts with step, wall_s, split, lang, k, bleu, chrf, signature, decoding, n_sentences
    evals: list = field(default_factory=list)
    # layer -> {step: [tokens of expert 0, 1, ...]}
    expert_load: dict = field(default_factory=dict)


@dataclass
class Database:
    path: str
    schema_version: int
    sweeps: list
    runs: list
    has_outputs: bool


def _connect_read_only(path):
    if not os.path.exists(path):
        raise ReportError(f"{path}: no such database file")
    if os.path.isdir(path):
        raise ReportError(f"{path}: is a directory, expected a SQLite database file")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    # As the C++ store does (Note [Read-only opens] in harness/store/sqlite_util.cpp): in a
    # folder this user cannot write and with no -wal file, nobody is writing the database, and
    # it is read immutable, without the side files SQLite could not create there.
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK) and not os.path.exists(path + "-wal"):
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
        conn.execute("PRAGMA query_only = 1")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise ReportError(f"{path}: not a readable SQLite database ({e})") from e
    return conn, version


def check_schema(conn, path, version):
    """Refuses files this report cannot read, naming the version or the missing column."""
    newest = max(SUPPORTED_SCHEMA_VERSIONS)
    if version == 0:
        raise ReportError(
            f"{path}: schema version 0: an empty file or not a moebench results database "
            f"(this report reads version {newest}; a moebench database gets its schema when "
            f"a run first writes to it)")
    if version > newest:
        raise ReportError(
            f"{path}: schema version {version} is newer than version {newest} that this "
            f"report reads; use the reports/ of the moebench that wrote it")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ReportError(f"{path}: schema version {version} is not one this report reads "
                          f"(reads {list(SUPPORTED_SCHEMA_VERSIONS)})")
    for table, columns in REQUIRED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not present:
            raise ReportError(f"{path}: schema version {version} but table '{table}' is missing")
        for column in columns:
            if column not in present:
                raise ReportError(f"{path}: table '{table}' has no column '{column}'")


def _json_or(text, default, where):
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{where}: invalid JSON ({e})") from e


def _select_sweep_ids(sweeps, wanted, path):
    """--sweep S: an exact id, else the most recently created sweep named S."""
    ids = []
    for name in wanted:
        exact = [s for s in sweeps if s.id == name]
        if exact:
            ids.append(exact[0].id)
            continue
        named = sorted((s for s in sweeps if s.name == name), key=lambda s: s.created_at)
        if not named:
            known = ", ".join(sorted({s.name for s in sweeps})) or "none"
            raise ReportError(f"{path}: no sweep named or with id '{name}' (sweeps: {known})")
        ids.append(named[-1].id)
    return ids


def load(path, sweeps=()):
    """Reads the database at `path`; with `sweeps`, only runs of those sweeps (names or ids)."""
    conn, version = _connect_read_only(path)
    try:
        check_schema(conn, path, version)
        all_sweeps = [
            Sweep(r[0], r[1], r[2], r[3], r[4], bool(r[5]))
            for r in conn.execute(
                "SELECT id, name, manifest, created_at, git_commit, dirty FROM sweeps "
                "ORDER BY created_at")
        ]
        sweep_ids = _select_sweep_ids(all_sweeps, sweeps, path) if sweeps else None
        runs = []
        for r in conn.execute(
                "SELECT id, sweep_id, method, size, seed, spec_json, status, started_at, "
                "ended_at, exit_code, error, host, device, world_size, threads, libs, "
                "params_total, params_active FROM runs ORDER BY rowid"):
            if sweep_ids is not None and r[1] not in sweep_ids:
                continue
            runs.append(
                Run(id=r[0], sweep_id=r[1] or "", method=r[2], size=r[3], seed=int(r[4]),
                    spec=_json_or(r[5], {}, f"{path}: runs.spec_json of run {r[0]}"),
                    status=r[6], started_at=r[7] or "", ended_at=r[8] or "", exit_code=r[9],
                    error=r[10] or "", host=r[11], device=r[12], world_size=r[13],
                    threads=r[14], libs=_json_or(r[15], {}, f"{path}: runs.libs of run {r[0]}"),
                    params_total=r[16], params_active=r[17]))
        by_id = {run.id: run for run in runs}
        for run_id, step, wall_s, key, value in conn.execute(
                "SELECT run_id, step, wall_s, key, value FROM metrics ORDER BY run_id, key, step"):
            run = by_id.get(run_id)
            if run is not None:
                run.metrics.setdefault(key, []).append((step, wall_s, value))
        for row in conn.execute(
                "SELECT run_id, step, wall_s, split, lang, k, bleu, chrf, signature, decoding, "
                "n_sentences FROM evals ORDER BY run_id, step, split, lang, k"):
            run = by_id.get(row[0])
            if run is None:
                continue
            run.evals.append({
                "step": row[1], "wall_s": row[2], "split": row[3], "lang": row[4], "k": row[5],
                "bleu": row[6], "chrf": row[7], "signature": row[8],
                "decoding": row[9] or "{}", "n_sentences": row[10]})
        for run_id, step, layer, expert, tokens in conn.execute(
                "SELECT run_id, step, layer, expert, tokens FROM expert_load "
                "ORDER BY run_id, layer, step, expert"):
            run = by_id.get(run_id)
            if run is None:
                continue
            per_step = run.expert_load.setdefault(layer, {}).setdefault(step, [])
            while len(per_step) <= expert:
                per_step.append(0)
            per_step[expert] = tokens
        has_outputs = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?",
            (OUTPUTS_TABLE,)).fetchone()[0] > 0
        if has_outputs:  # schema 2 always has the table; it matters only when it holds rows
            has_outputs = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {OUTPUTS_TABLE})").fetchone()[0] == 1
    finally:
        conn.close()
    selected_sweeps = all_sweeps if sweep_ids is None else [
        s for s in all_sweeps if s.id in sweep_ids]
    return Database(path=path, schema_version=version, sweeps=selected_sweeps, runs=runs,
                    has_outputs=has_outputs)

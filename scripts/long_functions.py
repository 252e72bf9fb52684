#!/usr/bin/python3
"""Lists the C++ functions longer than a limit (default 150 lines), longest first.

The developers' guide keeps functions under ~150 lines. This finds them by brace matching, with
comments, string and character literals and preprocessor lines blanked out first: a `{` outside
any function whose header (the text since the last `;`, `{` or `}`) has a parameter list opens a
function body; namespace, class, struct and `extern` bodies are looked into; any other block
(an initialiser, a lambda assigned at namespace scope) is skipped whole. A function's length runs
from the first line of its header to its closing brace.

  scripts/long_functions.py [--limit N] [--all] [PATH ...]   (default paths: harness methods datasets)

Exit status 1 when a function is over the limit (0 with --all, which lists every function).
"""
import argparse
import os
import re
import sys

SOURCE_SUFFIXES = (".cpp", ".cc", ".h", ".hpp")
SCOPE_WORDS = ("namespace", "class", "struct", "union", "extern")
NOT_FUNCTIONS = ("enum",)


def blank(text):
    """`text` with comments, literals and preprocessor lines replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if line_start and c == "#":
            j = i
            while j < n:
                if text[j] == "\n" and text[j - 1] != "\\":
                    break
                j += 1
            wipe(i, j)
            i = j
            continue
        if c == "\n":
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            wipe(i, j)
            i = j
            continue
        m = re.match(r'(?:u8|u|U|L)?R"([^(\s]{0,16})\(', text[i:i + 24])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(")" + m.group(1) + '"', i + m.end())
            j = n if end < 0 else end + len(m.group(1)) + 2
            wipe(i, j)
            i = j
            continue
        if c in "\"'":
            if c == "'" and in_number(text, i):
                i += 1  # a digit separator: 1'000'000
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, min(j, n))
            i = j + 1
            continue
        i += 1
    return "".join(out)


def in_number(text, i):
    """True when the quote at text[i] is inside a numeric literal (a digit separator)."""
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "'."):
        j -= 1
    return j < i and text[j].isdigit()


def match_brace(text, i):
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def function_name(header):
    """The name before the parameter list: `Foo::Bar` in `int Foo::Bar(int x) const`."""
    depth = 0
    for k, ch in enumerate(header):
        if ch == "(":
            m = re.search(r"([~\w:]+(?:<[^()]*>)?|operator\s*\S+?)\s*$", header[:k])
            if m:
                return m.group(1)
            break
    return header.split("(")[0].split()[-1] if header.split("(")[0].split() else "?"


def functions(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        raw = f.read()
    text = blank(raw)
    line_of = []
    line = 1
    for ch in text:
        line_of.append(line)
        if ch == "\n":
            line += 1
    found = []
    header_start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in ";}":
            header_start = i + 1
            i += 1
            continue
        if c != "{":
            i += 1
            continue
        header = text[header_start:i].strip()
        words = re.findall(r"[A-Za-z_]\w*", header)
        first = words[0] if words else ""
        if first in ("template",):
            # template <...> class/struct X: look at the word after the template's parameters
            rest = re.sub(r"^template\s*<.*?>\s*", "", header, flags=re.S)
            words = re.findall(r"[A-Za-z_]\w*", rest) or [""]
            first = words[0]
        if first in SCOPE_WORDS or (not header and False):
            header_start = i + 1
            i += 1
            continue
        end = match_brace(text, i)
        paren = header.find("(")
        eq = header.find("=")
        is_function = (
            paren >= 0 and first not in NOT_FUNCTIONS and (eq < 0 or eq > paren or "operator" in header)
        )
        if is_function:
            lead = len(text[header_start:i]) - len(text[header_start:i].lstrip())
            start_line = line_of[header_start + lead]
            end_line = line_of[end]
            found.append((end_line - start_line + 1, path, start_line, function_name(header)))
        header_start = end + 1
        i = end + 1
    return found


def sources(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.join(root, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["harness", "methods", "datasets"])
    ap.add_argument("--limit", type=int, default=150, help="list functions longer than this")
    ap.add_argument("--all", action="store_true", help="list every function (exit status 0)")
    ap.add_argument("--top", type=int, default=0, help="only the N longest")
    args = ap.parse_args()
    found = []
    for path in sources(args.paths):
        found.extend(functions(path))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    shown = found if args.all else [f for f in found if f[0] > args.limit]
    if args.top:
        shown = shown[: args.top]
    for length, path, line, name in shown:
        print(f"{length:5d}  {path}:{line}  {name}")
    over = [f for f in found if f[0] > args.limit]
    if not args.all:
        print(f"{len(over)} function(s) over {args.limit} lines in {len(found)} found", file=sys.stderr)
    return 1 if over and not args.all else 0


if __name__ == "__main__":
    sys.exit(main())

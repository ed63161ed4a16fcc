"""Every shell command in the READMEs is run or checked, so the READMEs cannot drift from the code.

The commands are read from the fenced blocks of every ``README.md`` in the repository (fences tagged ``bash``,
``sh``, ``shell``, ``console`` or untagged; tag other text ``text``). Nothing here lists today's commands: each one
is classified by what it runs.

* ``python -m deltal.train ...`` / ``deltal train ...`` (hydra overrides): validated and printed exactly as
  ``DRY_RUN=1`` does (``deltal.train.run``), in this process. A command with placeholders (``...``, ``key=...``,
  ``"$@"``) is one the reader completes: its overrides must compose (keys, method and values are checked).
* ``bash <launch script>`` (one that sources ``train_scripts/common.sh``): run by bash with the command's
  environment and arguments, python replaced by a shim that records the ``deltal.train`` command line, which is then
  validated as above. A GPU launch thus costs no GPU, no Ray and no download.
* ``bash <other script>`` (``setup.sh``, the quickstart, the math server): too expensive to run; the script must
  exist and every ``--option`` the README gives it must appear in the script.
* ``python -m <deltal module> ...``, ``deltal <command> ...``, ``python <repo script>.py ...``: ``--help`` runs
  (after the command's leading words, which may name a subcommand) and lists every ``--option`` the README uses.
  ``python -m <other module>``: the module must be importable.
* ``export NAME=value`` and ``NAME=value`` before a command: ``NAME`` must be read by the repository's code.

A program of another project (``curl``, ``ray``, ...) is named in an HTML comment on the line above its fence,
``<!-- external commands: curl ray -->``; its commands are not checked. Anything else fails and says how to mark it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from recording_python import RECORD_VARIABLE, recorded_commands, write_recording_python

REPO = Path(__file__).resolve().parents[1]
SHELL_FENCES = {"", "bash", "sh", "shell", "console", "zsh"}
EXTERNAL_MARK = re.compile(r"^<!--\s*external commands:\s*(?P<programs>[^>]*?)\s*-->$")
TRAIN_MODULE = "deltal.train"
PYTHON = re.compile(r"^(?:.*/)?python[0-9.]*$")
SHELL_SCRIPT_RUNNERS = {"bash", "sh"}
# Shell operators between commands of one line.
OPERATORS = {"&&", "||", ";", "|", "&"}
LAUNCH_SCRIPT = re.compile(r"^\s*(?:source|\.)\s+.*common\.sh", re.MULTILINE)
HOW_TO_MARK = (
    "if it is a program of another project, name it in an HTML comment on the line above the fence, "
    "`<!-- external commands: PROGRAM -->`; if the block is not commands, tag its fence ```text"
)


@dataclass
class Command:
    """One simple command of a README, with the environment the block set up to it."""

    document: str
    line: int
    text: str  # the logical line it came from
    env: dict[str, str]  # NAME=value words before it and exports earlier in its block
    words: list[str]
    external: frozenset[str] = frozenset()
    stdin: str | None = None  # a here-document's body
    assigned: list[str] = field(default_factory=list)  # env names this command (or its export) sets

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}: `{self.text}`"


def readme_documents(root: Path = REPO) -> list[Path]:
    """Every README.md of the repository, outside hidden folders and environments."""
    found = []
    for path in sorted(root.rglob("README.md")):
        parts = path.relative_to(root).parts
        if any(part.startswith(".") or part in ("node_modules", "site-packages") for part in parts):
            continue
        found.append(path)
    return found


def shell_blocks(text: str) -> list[tuple[int, list[str], frozenset[str]]]:
    """(first line number, lines, external programs) of each shell fence of a Markdown text."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, info = opening.groups()
        body = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        if info.lower() in SHELL_FENCES:
            previous = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            mark = EXTERNAL_MARK.match(previous)
            external = frozenset(mark.group("programs").replace(",", " ").split()) if mark else frozenset()
            if info.lower() == "console":  # only the prompted lines are commands
                body = [line[2:] if line.startswith("$ ") else "" for line in body]
            blocks.append((index + 2, body, external))
        index = end + 1
    return blocks


def _substitutions(line: str) -> tuple[str, list[str]]:
    """Take the ``$(...)`` command substitutions out of a line: (line with a placeholder, inner commands)."""
    inner = []
    while True:
        match = re.search(r"\$\(([^()]*)\)", line)
        if not match:
            return line, inner
        inner.append(match.group(1))
        line = line[: match.start()] + "SUBSTITUTED" + line[match.end() :]


def _words(line: str) -> list[str]:
    # <placeholder> is README notation, not a redirection.
    line = re.sub(r"(?<![<\w])<([A-Za-z][\w.-]*)>", r"⟨\1⟩", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def commands_of(document: str, text: str) -> list[Command]:
    """Every simple command of every shell fence of ``text``, in order."""
    commands = []
    for first_line, lines, external in shell_blocks(text):
        env: dict[str, str] = {}
        index = 0
        while index < len(lines):
            number = first_line + index
            logical = lines[index]
            while logical.endswith("\\") and index + 1 < len(lines):
                index += 1
                logical = logical[:-1] + " " + lines[index].strip()
            index += 1
            stdin = None
            heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", logical)
            if heredoc:
                body = []
                while index < len(lines) and lines[index].strip() != heredoc.group(1):
                    body.append(lines[index])
                    index += 1
                index += 1
                stdin = "\n".join(body)
                logical = logical[: heredoc.start()]
            shown = " ".join(logical.split())
            logical, inner = _substitutions(logical)
            pieces: list[list[str]] = [[]]
            for word in _words(logical):
                if word in OPERATORS:
                    pieces.append([])
                else:
                    pieces[-1].append(word)
            pieces += [_words(command) for command in inner]
            for words in filter(None, pieces):
                assigned = []
                local = dict(env)
                while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
                    name, _, value = words.pop(0).partition("=")
                    local[name] = value
                    assigned.append(name)
                if words[:1] == ["export"]:
                    for item in words[1:]:
                        name, _, value = item.partition("=")
                        env[name] = value
                        assigned.append(name)
                commands.append(Command(document, number, shown, local, words, external, stdin, assigned))
    return commands


def readme_commands() -> list[Command]:
    commands = []
    for path in readme_documents():
        commands += commands_of(str(path.relative_to(REPO)), path.read_text(encoding="utf-8"))
    return commands


def is_placeholder(word: str) -> bool:
    return word in ("...", "$@", "$*") or word.endswith("=...") or "⟨" in word


def options_of(words: list[str]) -> list[str]:
    """The ``--option`` names among a command's words (``[--x`` README notation included, ``=value`` cut)."""
    return sorted({word.strip("[]").split("=", 1)[0] for word in words if word.strip("[]").startswith("--")})


def leading_words(words: list[str]) -> list[str]:
    """The words before the first option that may name subcommands (lower-case identifiers)."""
    leading = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", word):
            break
        leading.append(word)
    return leading


@cache
def code_text() -> str:
    """All shell and Python code of the repository outside the tests, to look environment names up in."""
    texts = []
    for pattern in ("*.py", "*.sh"):
        for path in REPO.rglob(pattern):
            parts = path.relative_to(REPO).parts
            if parts[0] != "tests" and not any(part.startswith(".") for part in parts):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def check_environment_names(names: list[str]) -> list[str]:
    return [
        f"sets {name}, which no script or module of the repository reads"
        for name in names
        if not re.search(rf"\b{re.escape(name)}\b", code_text())
    ]


def run_help(target: str, argv: list[str], *, module: bool) -> tuple[int, str]:
    """``target <argv> --help`` in this process (a module as ``python -m`` runs it, or a script): (exit, output)."""
    out = io.StringIO()
    saved, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [target, *argv, "--help"]
    if not module:  # python puts a script's own folder first on sys.path (benchmarks import their neighbours)
        sys.path.insert(0, str(Path(target).resolve().parent))
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
            # runpy warns when the module was imported before (by another test); running it again is intended.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            if module:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.path[:] = saved, saved_path
    return code, out.getvalue()


def check_help(target: str, args: list[str], *, module: bool) -> list[str]:
    leading = leading_words(args)
    code, text = run_help(target, leading, module=module)
    if code != 0:
        return [f"`{target} {' '.join(leading)} --help` exits {code}: {text[-2000:]}"]
    return [
        f"{option} is not an option of `{target}` (its --help does not list it)"
        for option in options_of(args)
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
    ]


def dry_run(overrides: list[str], monkeypatch) -> list[str]:
    """Validate and print the config as ``DRY_RUN=1 python -m deltal.train <overrides>`` does, in this process.

    A command with placeholders (``...``, ``key=...``, ``"$@"``) is a partial one the reader completes: its overrides
    must compose (known keys, known method, values hydra parses); a complete one must validate and print.
    """
    from deltal.train import compose_config, run
    from deltal.verl_adapter.config import ConfigError

    complete = [word for word in overrides if not is_placeholder(word)]
    try:
        cfg = compose_config(complete)
    except ConfigError as exc:  # the command line's own check (an unknown method=): exit 2
        return [f"DRY_RUN=1 exits 2: {exc}"]
    except Exception as exc:  # noqa: BLE001 - hydra's parse and composition errors, reported as hydra would
        return [f"the overrides do not compose: {type(exc).__name__}: {exc}"]
    if len(complete) < len(overrides):
        return []
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as patch:
        patch.setenv("DRY_RUN", "1")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run(cfg)
            except SystemExit as exc:
                return [f"DRY_RUN=1 exits {exc.code}: {err.getvalue()[-2000:]}"]
    printed = yaml.safe_load(out.getvalue())
    if not isinstance(printed, dict) or "algorithm" not in printed:
        return [f"DRY_RUN=1 printed no config: {out.getvalue()[:500]!r}"]
    return []


@pytest.fixture(scope="module")
def python_shim(tmp_path_factory) -> Path:
    """Stands in for python in a launch script: records its command lines (tests/recording_python.py)."""
    return write_recording_python(tmp_path_factory.mktemp("shim") / "record_python")


def check_script(script: str, args: list[str], env: dict[str, str], shim: Path, tmp_path: Path, monkeypatch):
    path = REPO / script
    if not path.is_file():
        return [f"{script} does not exist"]
    text = path.read_text(encoding="utf-8")
    if not LAUNCH_SCRIPT.search(text):  # setup, quickstart, servers: not run here
        return [f"{option} does not appear in {script}" for option in options_of(args) if option not in text]
    recorded = tmp_path / "argv.jsonl"
    recorded.unlink(missing_ok=True)
    env = {**os.environ, **env, "DELTAL_PYTHON": str(shim), RECORD_VARIABLE: str(recorded), "HOME": str(tmp_path)}
    kept = [word for word in args if not is_placeholder(word)]
    result = subprocess.run(["bash", script, *kept], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return [f"the script exits {result.returncode}: {result.stderr[-2000:]}"]
    commands = recorded_commands(recorded)
    if [argv[:2] for argv in commands] != [["-m", TRAIN_MODULE]]:
        return [f"the launch script ran python {[argv[:2] for argv in commands]}, not once -m {TRAIN_MODULE}"]
    (argv,) = commands
    return dry_run(argv[2:], monkeypatch)


def check_python(args: list[str], monkeypatch) -> list[str]:
    import importlib.util

    if args[:1] == ["-m"] and len(args) > 1:
        module, rest = args[1], args[2:]
        if module == TRAIN_MODULE:
            return dry_run(rest, monkeypatch)
        if module.split(".")[0] != "deltal":
            found = importlib.util.find_spec(module.split(".")[0]) is not None
            return [] if found else [f"module {module} is not importable in this environment"]
        if importlib.util.find_spec(module) is None:
            return [f"module {module} does not exist"]
        return check_help(module, rest, module=True)
    if args and args[0].endswith(".py"):
        if not (REPO / args[0]).is_file():
            return [f"{args[0]} does not exist"]
        return check_help(str(REPO / args[0]), args[1:], module=False)
    return [f"python {' '.join(args[:1])} is neither `-m MODULE` nor a script of the repository"]


def check_deltal(args: list[str], monkeypatch) -> list[str]:
    from deltal.__main__ import find_command

    found = find_command(args)
    if found is None:
        return [f"`deltal {' '.join(leading_words(args))}` is not a deltal command"]
    sub, rest = found
    return check_python(["-m", sub.module, *rest], monkeypatch)


def command_problems(command: Command, shim: Path, tmp_path: Path, monkeypatch) -> list[str]:
    """What is wrong with one README command (empty: it works as written)."""
    problems = check_environment_names(command.assigned)
    words = command.words
    program = words[0] if words else ""
    if not words or program in ("export", "cd") or program in command.external:
        return problems
    if command.stdin is not None:
        return [*problems, f"a here-document cannot be checked; {HOW_TO_MARK}"]
    if program in SHELL_SCRIPT_RUNNERS and len(words) > 1:
        return problems + check_script(words[1], words[2:], command.env, shim, tmp_path, monkeypatch)
    if program.endswith(".sh"):
        return problems + check_script(program.removeprefix("./"), words[1:], command.env, shim, tmp_path, monkeypatch)
    if PYTHON.match(program):
        return problems + check_python(words[1:], monkeypatch)
    if Path(program).name == "deltal":
        return problems + check_deltal(words[1:], monkeypatch)
    return [*problems, f"the test cannot tell what `{program}` is; {HOW_TO_MARK}"]


# A command written twice (in two READMEs) is checked once: its words, environment and marks decide the outcome.
_CHECKED: dict[tuple, list[str]] = {}


def check_command(command: Command, shim: Path, tmp_path: Path, monkeypatch) -> list[str]:
    """``command_problems``, each prefixed with where the command is written."""
    key = (tuple(command.words), tuple(sorted(command.env.items())), tuple(command.assigned), command.external)
    if command.stdin is not None or key not in _CHECKED:
        _CHECKED[key] = command_problems(command, shim, tmp_path, monkeypatch)
    return [f"{command.where}: {problem}" for problem in _CHECKED[key]]


COMMANDS = readme_commands()


def test_every_readme_has_its_commands_found():
    # The README's two commands (set up and run the quickstart; set up and run the tests) at least.
    documents = {command.document for command in COMMANDS}
    assert "README.md" in documents
    programs = {" ".join(command.words[:2]) for command in COMMANDS if command.document == "README.md"}
    assert "bash setup.sh" in programs


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: f"{command.document}:{command.line}")
def test_readme_command_works_as_written(command, python_shim, tmp_path, monkeypatch):
    problems = check_command(command, python_shim, tmp_path, monkeypatch)
    assert not problems, "\n".join(problems)


SAMPLE = """
Intro text.

```bash
# comment only
DRY_RUN=1 deltal train method=delta_l ...   # trailing comment
export RAY_ADDRESS=<head-ip>:6379
python -m deltal.data.math --out DIR \\
    --orz-train ... [--prompt-template FILE]
bash setup.sh --cpu && .venv/bin/python -m pytest -q
python -m deltal.analysis.variance model --model "$(python -m deltal.cpu.assets)" --out lab/
```

<!-- external commands: curl -->
```bash
curl -s 127.0.0.1:6284/health | jq .
```

```text
not a command
```

```console
$ deltal --help
usage: deltal <command>
```

```bash
python - <<'PY'
print("hi")
PY
```
"""


def test_the_extraction_reads_what_a_shell_would_run():
    commands = commands_of("SAMPLE.md", SAMPLE)
    assert [(command.line, command.words) for command in commands] == [
        (6, ["deltal", "train", "method=delta_l", "..."]),
        (7, ["export", "RAY_ADDRESS=⟨head-ip⟩:6379"]),
        (8, ["python", "-m", "deltal.data.math", "--out", "DIR", "--orz-train", "...", "[--prompt-template", "FILE]"]),
        (10, ["bash", "setup.sh", "--cpu"]),
        (10, [".venv/bin/python", "-m", "pytest", "-q"]),
        (11, ["python", "-m", "deltal.analysis.variance", "model", "--model", "SUBSTITUTED", "--out", "lab/"]),
        (11, ["python", "-m", "deltal.cpu.assets"]),
        (16, ["curl", "-s", "127.0.0.1:6284/health"]),
        (16, ["jq", "."]),
        (24, ["deltal", "--help"]),
        (29, ["python", "-"]),
    ]
    assert commands[0].env == {"DRY_RUN": "1"} and commands[0].assigned == ["DRY_RUN"]
    assert commands[2].env == {"RAY_ADDRESS": "⟨head-ip⟩:6379"}  # exports reach the block's later commands
    assert commands[7].external == {"curl"} and commands[8].external == {"curl"}
    assert commands[10].stdin == 'print("hi")'
    assert options_of(commands[2].words) == ["--orz-train", "--out", "--prompt-template"]
    assert leading_words(commands[5].words[3:]) == ["model"]


def test_unknown_programs_and_wrong_options_are_reported_with_the_fix(python_shim, tmp_path, monkeypatch):
    text = "```bash\njq . x.json\npython -m deltal.data.math --no-such-option\nbash setup.sh --no-such-flag\n```\n"
    jq, math, setup = (
        check_command(command, python_shim, tmp_path, monkeypatch) for command in commands_of("X.md", text)
    )
    assert len(jq) == 1 and "cannot tell what `jq` is" in jq[0] and "<!-- external commands: PROGRAM -->" in jq[0]
    assert math == ["X.md:3: `python -m deltal.data.math --no-such-option`: --no-such-option is not an option of "
                    "`deltal.data.math` (its --help does not list it)"]  # fmt: skip
    assert setup == ["X.md:4: `bash setup.sh --no-such-flag`: --no-such-flag does not appear in setup.sh"]


def test_a_launch_script_command_that_does_not_validate_is_reported(python_shim, tmp_path, monkeypatch):
    script = next(
        path for path in sorted((REPO / "train_scripts").glob("*.sh")) if LAUNCH_SCRIPT.search(path.read_text())
    )
    text = (
        f"```bash\nbash {script.relative_to(REPO)} data.max_response_length=0\n"
        "NO_SUCH_KNOB=1 deltal train method=delta_l no_such_key=1 ...\n```\n"
    )
    bad_length, bad_knob = (
        check_command(command, python_shim, tmp_path, monkeypatch) for command in commands_of("X.md", text)
    )
    assert len(bad_length) == 1 and "DRY_RUN=1 exits 2" in bad_length[0] and "max_response_length" in bad_length[0]
    # A partial command (it ends in ...) must still compose: an unknown key is reported.
    assert len(bad_knob) == 2
    assert "sets NO_SUCH_KNOB, which no script or module of the repository reads" in bad_knob[0]
    assert "the overrides do not compose" in bad_knob[1] and "no_such_key" in bad_knob[1]

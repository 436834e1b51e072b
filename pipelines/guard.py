"""What `--overwrite` may replace: only dchag's own outputs, never a user's data.

An output path may be replaced only when it is recognisably ours — a zarr store whose
attributes say `dchag_artifact`, a folder carrying dchag's `.dchag` marker (run
folders, quickstart folders), or a model file whose metadata says it is dchag's — and
never when it overlaps an input: equal to one, containing one, or inside one. Anything
else is refused with one line, before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipelines.errors import DchagError
from pipelines.model_header import model_file_kind

MARKER = ".dchag"


def check_input_path(path: Path) -> None:
    """An input must be a regular file or a folder: a named pipe, device or socket would
    block the first read forever (or stream without end), so it is refused unopened."""
    path = Path(path)
    if not path.exists():
        raise DchagError("no such file or folder", path=path)
    if not (path.is_dir() or path.is_file()):
        raise DchagError("is not a regular file or folder (a named pipe, device or socket)",
                         path=path, fix="copy the data into a file and pass that")


def artifact_kind(path: Path) -> str | None:
    """The `dchag_artifact` attribute of a zarr store (format 2 or 3), else None."""
    path = Path(path)
    for meta in (path / ".zattrs", path / "zarr.json"):
        if meta.is_file():
            try:
                attrs = json.loads(meta.read_text())
            except (OSError, ValueError):
                return None
            attrs = attrs.get("attributes", attrs) if meta.name == "zarr.json" else attrs
            kind = attrs.get("dchag_artifact") if isinstance(attrs, dict) else None
            return kind if isinstance(kind, str) else None
    return None


def folder_kind(path: Path) -> str | None:
    """The kind recorded in a dchag folder's marker (`run`, `quickstart`, …), else None."""
    try:
        info = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info.get("kind") if isinstance(info, dict) else None


def mark_folder(path: Path, kind: str) -> None:
    (Path(path) / MARKER).write_text(json.dumps({"kind": kind}) + "\n")


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def check_no_overlap(target: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output that is, contains, or lies inside something the command reads."""
    t = _real(target)
    for inp in inputs:
        if not isinstance(inp, str | os.PathLike):
            continue  # a remote store (a URL) cannot overlap a local output
        i = _real(inp)
        if t == i or t in i.parents or i in t.parents:
            raise DchagError(f"the output overlaps the input {inp}", path=target,
                             fix="choose an --out outside the inputs")


def check_replaceable(target: Path, kinds: Iterable[str], inputs: Iterable[Path] = (),
                      overwrite: bool = False,
                      hint: str = "pass --overwrite to replace it (or --append where supported)"
                      ) -> None:
    """Before any work: `target` may be written (new) or replaced (ours, with --overwrite)."""
    target = Path(target)
    check_no_overlap(target, inputs)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        return  # an empty folder holds nothing to lose
    wanted = tuple(kinds)
    found = artifact_kind(target) if target.is_dir() else None
    found = found or (folder_kind(target) if target.is_dir() else None)
    if target.is_file() and not target.is_symlink():
        found = model_file_kind(target)
    if found not in wanted:
        what = f"a dchag {found}" if found else "not something dchag wrote"
        raise DchagError(f"already exists and is {what}; dchag replaces only its own "
                         f"{' or '.join(wanted)} outputs", path=target,
                         fix="choose another --out, or move it away yourself")
    if not overwrite:
        raise DchagError("already exists", path=target, fix=hint)


@contextlib.contextmanager
def output_folder(out_dir: Path, items: dict[str, str | None], overwrite: bool,
                  inputs: Iterable[Path] = ()) -> Iterator[Path]:
    """Stage a command's outputs, then move them into `out_dir` only if all succeeded.

    `items` maps each output name to its artifact kind (None for a figure or file). The
    block writes into a private staging folder beside `out_dir`; on success each item is
    moved into place (a failure before that leaves `out_dir` as it was, and never an
    empty or half-filled folder)."""
    from pipelines.fsops import replace_dir, temp_sibling
    from pipelines.locks import write_lock

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DchagError("is a file, not a folder", path=out_dir,
                         fix="give --out a folder (it is created if missing)")
    if not out_dir.resolve().parent.is_dir():
        raise DchagError("the folder for the outputs does not exist",
                         path=out_dir.resolve().parent, fix="create it first")
    inputs = list(inputs)
    for inp in inputs:  # the folder may hold inputs, but may not be inside one
        if _real(inp) == _real(out_dir) or _real(inp) in _real(out_dir).parents:
            raise DchagError(f"the output folder lies inside the input {inp}", path=out_dir,
                             fix="choose an --out outside the inputs")
    for name, kind in items.items():
        target = out_dir / name
        check_no_overlap(target, inputs)
        if kind is not None:
            check_replaceable(target, (kind,), (), overwrite,
                              "pass --overwrite to replace it, or --out another folder")
        elif target.exists() and not overwrite:
            raise DchagError("already exists", path=target,
                             fix="pass --overwrite to replace it, or --out another folder")
        elif target.is_dir():
            raise DchagError("is a folder, where a file will be written", path=target)
    with write_lock(out_dir):
        stage = temp_sibling(out_dir, "partial")
        stage.mkdir()
        try:
            yield stage
            out_dir.mkdir(exist_ok=True)
            for name in items:
                made = stage / name
                if made.is_dir():
                    replace_dir(made, out_dir / name)
                elif made.exists():
                    os.replace(made, out_dir / name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

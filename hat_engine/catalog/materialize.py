"""Materialise catalog entries: rebuild a served artifact from the catalog's weights, verified by sha256.

Entries cut from one SuperTransformer share its weights, so the catalog stores the SuperTransformer once (plus
any fine-tuned weights) and each entry records how to rebuild its artifact (CONTRACT §3): the source weights
and their sha256, the arch, and the sha256 of the extracted weights. Building checks both hashes, so an altered
or corrupted source is refused rather than served; a cache folder whose files no longer match the stamp written
when it was built is rebuilt.

Building needs torch (the supernet, the ONNX export); checking a built folder does not. `materialize_in_child`
builds in a child Python process, so a process that only serves ONNX graphs never imports torch.
"""

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hat_engine.catalog.schema import Artifact, Catalog, CatalogEntry, parse_catalog, sha256_file
from hat_engine.errors import CatalogError, HatError
from hat_engine.runtime.onnx_signature import ONNX_FORMAT

log = logging.getLogger(__name__)

STAMP = "materialized.json"


def _dir_files(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != STAMP}


def _cache_ok(folder: Path, weights_sha: str, arch_id: str, fmt: str) -> bool:
    """The folder was built for these weights and this arch (head counts change no weights), in this code's
    ONNX format where it holds graphs, and is intact."""
    stamp = folder / STAMP
    if not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (recorded.get("weights_sha256") == weights_sha and recorded.get("arch_id") == arch_id
            and (fmt == "torch" or recorded.get("onnx_format") == ONNX_FORMAT)
            and recorded.get("files") == _dir_files(folder))  # fmt: skip


def artifact_for(entry: CatalogEntry, fmt: str) -> Artifact | None:
    """The entry's artifact of format `fmt`. A torch artifact the catalog does not list is cut from the recipe of
    its fp32 ONNX artifact, or else of its int8 one: the same weights either way (the checksum is
    format-independent; int8 quantisation happens when the ONNX graph is materialised), run unquantised by torch,
    which has no int8 path here, so an int8 entry is served by torch at its fp32 twin's quality."""
    found = next((a for a in entry.artifacts if a.format == fmt), None)
    if found is None and fmt == "torch":
        recipes = (a for f in ("onnx", "onnx-int8") for a in entry.artifacts if a.format == f and a.materialize)
        onnx = next(recipes, None)
        if onnx is not None:
            found = Artifact("torch", f"{Path(onnx.path).parent}/torch", onnx.sha256, onnx.materialize)
    return found


def materialize(catalog_dir: Path, catalog: Catalog, entry: CatalogEntry, fmt: str, cache_dir: Path) -> Path:
    """The folder holding the entry's artifact of format `fmt` (ONNX export or torch file), built on first use."""
    artifact = artifact_for(entry, fmt)
    if artifact is None:
        raise CatalogError(f"entry {entry.id} has no {fmt!r} artifact; it has {[a.format for a in entry.artifacts]}")
    folder = Path(cache_dir) / entry.id / fmt
    arch_id = entry.arch.arch_id()
    if _cache_ok(folder, artifact.sha256, arch_id, fmt):
        return folder
    from hat_engine.catalog.extract import extract_verified  # torch only when something is built

    model = extract_verified(catalog_dir, catalog, entry, artifact)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fmt}-", dir=folder.parent))  # unique: workers may build at once
    if fmt == "torch":
        model.save(tmp / "model.pt")
    else:
        from hat_engine.runtime.onnx_export import quantize_export
        from hat_engine.runtime.onnx_graph import build_onnx

        build_onnx(model, tmp)
        if fmt == "onnx-int8":
            quantize_export(tmp)
    (tmp / STAMP).write_text(json.dumps({"entry": entry.id, "weights_sha256": artifact.sha256, "arch_id": arch_id,
                                         "onnx_format": ONNX_FORMAT, "files": _dir_files(tmp)}, indent=2))  # fmt: skip
    if _cache_ok(folder, artifact.sha256, arch_id, fmt):  # another process finished first: keep its build
        shutil.rmtree(tmp, ignore_errors=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    log.info("materialised %s (%s) into %s", entry.id, fmt, folder)
    return folder


def materialize_in_child(
    catalog_dir: Path, catalog: Catalog, builds: list[tuple[CatalogEntry, str]], cache_dir: Path
) -> dict[str, Path | CatalogError]:
    """`materialize` for each (entry, format), keyed by entry id: a folder, or the CatalogError refusing it. What is
    not cached yet is built in one child Python process (`python -m hat_engine.catalog.materialize`, the request
    on stdin), so this process only checks cached folders and never imports torch."""
    results: dict[str, Path | CatalogError] = {}
    stale = []
    for entry, fmt in builds:
        artifact, folder = artifact_for(entry, fmt), Path(cache_dir) / entry.id / fmt
        if artifact is not None and _cache_ok(folder, artifact.sha256, entry.arch.arch_id(), fmt):
            results[entry.id] = folder
        else:
            stale.append([entry.id, fmt])
    if not stale:
        return results
    request = {"catalog_dir": str(Path(catalog_dir).resolve()), "catalog": catalog.to_dict(), "builds": stale,
               "cache_dir": str(Path(cache_dir).resolve())}  # fmt: skip
    log.info("building %d artifact(s) in a child process: %s", len(stale), ", ".join(e for e, _ in stale))
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(request), capture_output=True, text=True)
    for line in child.stderr.splitlines():
        log.debug("child: %s", line)
    reply = child.stdout.strip().splitlines()
    if child.returncode != 0 or not reply:
        last = (child.stderr.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        return results | {e: CatalogError(f"building {e} ({f}) failed in a child process: {last}") for e, f in stale}
    built = json.loads(reply[-1])
    log.info("the child process built %d artifact(s) in %.1fs", len(stale), time.monotonic() - started)
    for entry_id, _ in stale:
        outcome = built[entry_id]
        results[entry_id] = Path(outcome["folder"]) if "folder" in outcome else CatalogError(outcome["error"])
    return results


def _child_main() -> int:
    """The child of `materialize_in_child`: build each requested artifact; print, as one JSON line, each entry's
    folder or the message refusing it."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    request = json.loads(sys.stdin.read())
    catalog, out = parse_catalog(request["catalog"]), {}
    for entry_id, fmt in request["builds"]:
        try:
            folder = materialize(Path(request["catalog_dir"]), catalog, catalog.entry(entry_id), fmt,
                                 Path(request["cache_dir"]))  # fmt: skip
            out[entry_id] = {"folder": str(folder)}
        except HatError as exc:
            out[entry_id] = {"error": str(exc)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())

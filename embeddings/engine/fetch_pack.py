"""Operator tool: download an insightface model pack. Never used by the service.

    python -m embeddings.engine.fetch_pack --pack buffalo_l --root /var/lib/faceservice/models --accept-licence

insightface's pretrained packs are licensed for NON-COMMERCIAL RESEARCH ONLY;
the flag --accept-licence records that you have read and accept those terms
(see docs/MODELS.md for licensed or own-trained packs). The pack lands in
<root>/models/<pack>/; set FACE_MODEL_ROOT=<root> and FACE_MODEL_PACK=<pack>.
Needs internet access to github.com, so it cannot run in the offline sandbox.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

LICENCE_NOTICE = (
    "insightface's pretrained model packs (buffalo_l, buffalo_s, antelopev2, ...) are "
    "released for non-commercial research purposes only. Commercial use needs a licence "
    "from insightface (https://www.insightface.ai) or a pack you trained yourself on data "
    "you may use. Re-run with --accept-licence if your use is within those terms."
)
MAX_PACK_BYTES = 1 << 30  # buffalo_l is ~280 MB zipped


def pack_url(pack: str) -> str:
    """insightface's own release URL for a pack (from the installed insightface)."""
    try:
        from insightface.utils.storage import model_zoo_download_url
    except ImportError:  # older insightface releases
        return f"https://github.com/deepinsight/insightface/releases/download/v0.7/{pack}.zip"
    return model_zoo_download_url(f"{pack}.zip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default="buffalo_l")
    parser.add_argument("--root", required=True, type=Path, help="model root (FACE_MODEL_ROOT)")
    parser.add_argument("--url", help="download from this URL instead of insightface's release")
    parser.add_argument("--sha256", help="expected sha256 of the zip file")
    parser.add_argument("--accept-licence", action="store_true")
    parser.add_argument("--force", action="store_true", help="replace an existing pack folder")
    args = parser.parse_args(argv)
    if not args.accept_licence:
        print(LICENCE_NOTICE, file=sys.stderr)
        return 2
    if "/" in args.pack or args.pack in ("", ".", ".."):
        parser.error("--pack must be a plain name")
    target = args.root.expanduser().resolve() / "models" / args.pack
    if target.exists() and not args.force:
        print(f"{target} already exists (use --force to replace it)", file=sys.stderr)
        return 1
    url = args.url or pack_url(args.pack)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        archive = Path(work) / f"{args.pack}.zip"
        digest = _download(url, archive)
        if args.sha256 and digest != args.sha256.lower():
            print(f"sha256 mismatch: got {digest}", file=sys.stderr)
            return 1
        staged = Path(work) / args.pack
        names = _extract_onnx(archive, staged)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    print(f"installed {', '.join(names)} into {target} (zip sha256 {digest})")
    return 0


def _download(url: str, path: Path) -> str:
    import httpx

    digest = hashlib.sha256()
    size = 0
    print(f"downloading {url}", file=sys.stderr)
    with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response, path.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            size += len(chunk)
            if size > MAX_PACK_BYTES:
                raise SystemExit("download exceeds 1 GiB; refusing")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _extract_onnx(archive: Path, folder: Path) -> list[str]:
    """Only *.onnx members, flattened to their base names (no path traversal)."""
    folder.mkdir()
    names = []
    with zipfile.ZipFile(archive) as zf:
        if sum(info.file_size for info in zf.infolist()) > 2 * MAX_PACK_BYTES:
            raise SystemExit("the archive unpacks to more than 2 GiB; refusing")
        for info in zf.infolist():
            name = PurePosixPath(info.filename).name
            if info.is_dir() or not name.endswith(".onnx") or name.startswith("."):
                continue
            with zf.open(info) as src, (folder / name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
            names.append(name)
    if not names:
        raise SystemExit("the archive holds no .onnx files")
    return sorted(names)


if __name__ == "__main__":
    raise SystemExit(main())

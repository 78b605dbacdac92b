"""The `facesearch` command: index a folder, search, compare, list and delete faces, wait for jobs,
export the audit log. Results are JSON on stdout (one object, or one per line for lists);
messages and progress go to stderr. The URL and key come from --url / --api-key or
FACESEARCH_URL / FACESEARCH_API_KEY; the key is never printed.

Exit status: 0 done, 1 an error (or some photos / a job failed), 2 bad usage, 3 a wait (job or
deletion) timed out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from facesearch import __version__
from facesearch.client import Client
from facesearch.errors import APIError, WaitTimeout
from facesearch.indexer import index_directory
from facesearch.progress import Progress


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.url or not args.api_key:
        print("error: give --url and --api-key (or set FACESEARCH_URL and FACESEARCH_API_KEY)", file=sys.stderr)
        return 2
    try:
        with Client(args.url, args.api_key, timeout=args.timeout) as client:
            return args.run(client, args) or 0
    except APIError as exc:
        where = f" (request id {exc.request_id})" if exc.request_id else ""
        print(f"error: {exc.status} {exc.code}: {exc.message}{where}", file=sys.stderr)
        if exc.details:
            print(json.dumps(exc.details, indent=2), file=sys.stderr)
        return 1
    except WaitTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (httpx.HTTPError, OSError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="facesearch", description=__doc__.split("\n\n")[0])
    top.add_argument("--version", action="version", version=f"facesearch {__version__}")
    top.add_argument("--url", default=os.environ.get("FACESEARCH_URL"),
                     help="service URL (default: $FACESEARCH_URL)")
    top.add_argument("--api-key", default=os.environ.get("FACESEARCH_API_KEY"),
                     help="API key (default: $FACESEARCH_API_KEY; the variable keeps it out of your shell history)")
    top.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (default 60)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="index a folder of photos: DIR/<subject>/<photo>")
    index.add_argument("directory", type=Path, metavar="DIR")
    index.add_argument("--parallel", type=int, default=4, help="jobs uploading or running at once (default 4)")
    index.add_argument("--batch-size", type=int, default=50, help="photos per index job (default 50)")
    index.add_argument("--batch-mb", type=float, default=40,
                       help="megabytes per index job (default 40, under the server's 60 MB request cap)")
    index.add_argument("--state", type=Path,
                       help="state file (default: $XDG_STATE_HOME/facesearch/index-<folder digest>.json)")
    index.add_argument("--no-resume", dest="resume", action="store_false",
                       help="send every photo, also those indexed before")
    index.add_argument("--max-faces", type=int, help="faces kept per photo, largest first")
    index.add_argument("--min-face-size", type=float, help="pixels, shorter side of the face box")
    index.add_argument("--wait-timeout", type=float, default=3600, help="seconds to wait for each job")
    index.add_argument("--inline-base64", action="store_true",
                       help="send photos as base64 in JSON jobs (for servers without multipart index jobs)")
    index.set_defaults(run=run_index)

    search = commands.add_parser("search", help="search your faces with a photo")
    search.add_argument("photo", type=Path, metavar="PHOTO")
    search.add_argument("--top-k", type=int)
    search.add_argument("--threshold", type=float, help="a fixed threshold (instead of --target-fpir)")
    search.add_argument("--target-fpir", type=float, help="target false-positive identification rate")
    search.add_argument("--quality-filter", choices=["NONE", "AUTO", "LOW", "MEDIUM", "HIGH"])
    search.add_argument("--largest", action="store_true", help="search with the largest face only")
    search.add_argument("--group-by-subject", action="store_true", help="the best face per subject only")
    search.add_argument("--subject", action="append", dest="subject_ids", metavar="ID", help="only these subjects")
    search.set_defaults(run=run_search)

    compare = commands.add_parser("compare", help="compare photo A with one or more photos B")
    compare.add_argument("target", type=Path, metavar="A")
    compare.add_argument("references", type=Path, nargs="+", metavar="B")
    compare.add_argument("--threshold", type=float, help="a fixed threshold (instead of --max-false-match-rate)")
    compare.add_argument("--max-false-match-rate", type=float, help="decide at this false-match rate")
    compare.set_defaults(run=run_compare)

    faces = commands.add_parser("faces", help="face metadata").add_subparsers(dest="faces", required=True)
    listing = faces.add_parser("list", help="list faces (one JSON object a line), newest first")
    listing.add_argument("--asset", dest="asset_id")
    listing.add_argument("--subject", dest="subject_id")
    listing.add_argument("--max", type=int, help="stop after this many")
    listing.set_defaults(run=run_faces_list)

    delete = commands.add_parser(
        "delete", help="delete face data (role admin); prints the receipt, or the deletion when it was queued")
    delete.add_argument("--subject", action="append", dest="subject_ids", metavar="ID", default=[])
    delete.add_argument("--asset", action="append", dest="asset_ids", metavar="ID", default=[])
    delete.add_argument("--face", action="append", dest="face_ids", metavar="ID", default=[])
    delete.add_argument("--wait", action="store_true",
                        help="when the server queues a large deletion (202), wait for it and print its receipt")
    delete.add_argument("--timeout", dest="wait_timeout", type=float, default=600,
                        help="seconds to wait with --wait (default 600)")
    delete.set_defaults(run=run_delete)

    jobs = commands.add_parser("jobs", help="index jobs").add_subparsers(dest="jobs", required=True)
    wait = jobs.add_parser("wait", help="wait for a job to finish and print it (exit 1 unless it succeeded)")
    wait.add_argument("job_id", metavar="JOB")
    wait.add_argument("--timeout", dest="wait_timeout", type=float, default=600)
    wait.set_defaults(run=run_jobs_wait)

    audit = commands.add_parser("audit", help="audit log (role auditor)").add_subparsers(dest="audit", required=True)
    export = audit.add_parser("export", help="stream the audit log to a file or stdout")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", "-o", type=Path, help="file to write (default stdout)")
    export.add_argument("--since", help="ISO time: events at or after")
    export.add_argument("--until", help="ISO time: events before")
    export.add_argument("--action", help='exact action, or a prefix ending in "*"')
    export.set_defaults(run=run_audit_export)
    return top


def run_index(client: Client, args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder", file=sys.stderr)
        return 2
    options = {key: value for key, value in (("max_faces", args.max_faces), ("min_face_size", args.min_face_size))
               if value is not None}
    bar: list[Progress] = []
    summary = index_directory(
        client, args.directory, state_path=args.state, resume=args.resume, parallel=args.parallel,
        batch_files=args.batch_size, batch_bytes=int(args.batch_mb * 2**20), options=options or None,
        inline_base64=args.inline_base64, wait_timeout=args.wait_timeout,
        on_start=lambda total: bar.append(Progress(total, "indexing")), on_progress=lambda n: bar[0].update(n))
    if bar:
        bar[0].close()
    for asset_id, code in summary.failed:
        print(f"failed: {asset_id}: {code}", file=sys.stderr)
    print(f"indexed {summary.indexed} photos ({summary.faces} faces) in {len(summary.jobs)} jobs; "
          f"skipped {summary.skipped} indexed before; {len(summary.failed)} failed", file=sys.stderr)
    _print({"indexed": summary.indexed, "faces": summary.faces, "skipped": summary.skipped,
            "failed": [{"asset_id": a, "code": c} for a, c in summary.failed], "jobs": summary.jobs})
    return 1 if summary.failed else 0


def run_search(client: Client, args: argparse.Namespace) -> None:
    _print(client.search(args.photo, top_k=args.top_k, threshold=args.threshold, target_fpir=args.target_fpir,
                         quality_filter=args.quality_filter, subject_ids=args.subject_ids,
                         faces="largest" if args.largest else "all",
                         group_by="subject" if args.group_by_subject else None))


def run_compare(client: Client, args: argparse.Namespace) -> None:
    _print(client.compare(args.target, args.references, threshold=args.threshold,
                          max_false_match_rate=args.max_false_match_rate))


def run_faces_list(client: Client, args: argparse.Namespace) -> None:
    faces = client.iter_faces(asset_id=args.asset_id, subject_id=args.subject_id)
    _print_lines(itertools.islice(faces, args.max))


def run_delete(client: Client, args: argparse.Namespace) -> int:
    if not (args.subject_ids or args.asset_ids or args.face_ids):
        print("error: give --subject, --asset or --face (each may repeat)", file=sys.stderr)
        return 2
    answer = client.delete_faces(subject_ids=args.subject_ids or None, asset_ids=args.asset_ids or None,
                                 face_ids=args.face_ids or None)
    if "status" in answer:  # queued (202): a deletion to follow, not yet a receipt
        if args.wait:
            answer = client.wait_for_deletion(answer["id"], timeout=args.wait_timeout)["receipt"]
        else:
            print(f"deletion queued: follow it at {answer['status_url']}, or use --wait", file=sys.stderr)
    _print(answer)
    return 0


def run_jobs_wait(client: Client, args: argparse.Namespace) -> int:
    job = client.wait_for_job(args.job_id, timeout=args.wait_timeout)
    _print(job)
    return 0 if job["state"] == "succeeded" else 1


def run_audit_export(client: Client, args: argparse.Namespace) -> None:
    chunks = client.export_audit_events(args.format, since=args.since, until=args.until, action=args.action)
    if args.output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        return
    partial = args.output.with_name(args.output.name + ".partial")
    with open(partial, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    partial.replace(args.output)  # a failed export leaves no file that looks complete


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _print_lines(values: Iterable[Any]) -> None:
    for value in values:
        print(json.dumps(value), flush=True)


if __name__ == "__main__":
    sys.exit(main())

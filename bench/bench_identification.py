"""Identification accuracy of the service against brute-force exact search (LFW dev-train).

    .venv/bin/python bench/bench_identification.py [--json out.json] [--limit-people N]

What it does (see docs/BENCHMARKS.md, "Identification accuracy"):
1. Starts the real service (bench/search_stack.py): throw-away PostgreSQL +
   Valkey, migrations, a tenant and an API key, gunicorn with one worker.
2. Runs the engine (same configuration as the server) over every photo once.
3. Gallery: for each person with two or more photos, the first photo in which a
   face is found is enrolled (subject = the person) through the index-job API
   (POST /v1/index-jobs with inline images, options max_faces=1, run by a real
   Celery worker process), or with --enrol-via store through
   embeddings.store.services.replace_asset_faces in this process. Genuine probes:
   that person's other photos. Impostor probes: the people with exactly one
   photo (not enrolled).
4. Every probe is searched through HTTP POST /v1/search (faces=largest,
   top_k=1) with threshold=-1: the closed-set best match (rank-1), whose
   similarity against the service's default threshold (SEARCH_MATCH_THRESHOLD,
   as the service reports it) gives the open-set answer (false matches).
   Every 10th probe is searched again with no threshold, and the service's
   own answer at its default must be the same (reported as checks/mismatches).
5. Brute force: the same engine's embeddings of the same photos, exact cosine
   over the enrolled gallery in NumPy, the same threshold.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.search_stack import LFW_DIR, ServiceStack, lfw_people, log


@dataclass(frozen=True)
class Split:
    """Who is enrolled with which photo, and who searches with which."""

    gallery: dict[str, Path]  # person -> enrolled photo
    genuine: list[tuple[str, Path]]  # (person, photo) of enrolled people, not the enrolled photo
    impostors: list[tuple[str, Path]]  # (person, photo) of people with exactly one photo
    multi_photo_people: int  # people with two or more photos
    gallery_no_face: int  # of those, people none of whose photos had a detectable face
    gallery_first_photo_no_face: int  # people whose first photo had no face (a later one was enrolled)


def split_people(people: dict[str, list[Path]], has_face: dict[Path, bool]) -> Split:
    """Enrol the first photo with a face of every person with >= 2 photos; probe with the rest."""
    gallery, genuine, impostors = {}, [], []
    multi = no_face = first_no_face = 0
    for person, photos in sorted(people.items()):
        if len(photos) == 1:
            impostors.append((person, photos[0]))
            continue
        multi += 1
        enrolled = next((p for p in photos if has_face.get(p)), None)
        if enrolled is None:
            no_face += 1
            continue
        if enrolled != photos[0]:
            first_no_face += 1
        gallery[person] = enrolled
        genuine.extend((person, p) for p in photos if p != enrolled)
    return Split(gallery, genuine, impostors, multi, no_face, first_no_face)


@dataclass
class Answer:
    """One probe's answer: best subject and similarity (None: no face found / no match)."""

    face_found: bool
    top_subject: str | None = None
    top_similarity: float | None = None
    top_face: str | None = None  # the gallery asset (photo) of the best match


def brute_force(gallery: np.ndarray, labels: list[str], assets: list[str],
                probe: np.ndarray | None, threshold: float | None) -> Answer:
    """Exact cosine of one probe embedding against the gallery (unit vectors: a dot product)."""
    if probe is None:
        return Answer(face_found=False)
    scores = gallery @ (probe / np.linalg.norm(probe))
    best = int(np.argmax(scores))
    if threshold is not None and scores[best] < threshold:
        return Answer(face_found=True)
    return Answer(True, labels[best], float(scores[best]), assets[best])


def service_answer(body: dict) -> Answer:
    """The best match of the one (largest) face of a /v1/search response."""
    if not body["faces"]:
        return Answer(face_found=False)
    matches = body["faces"][0]["matches"]
    if not matches:
        return Answer(face_found=True)
    best = matches[0]
    return Answer(True, best["subject_id"], float(best["similarity"]), best["asset_id"])


@dataclass
class Metrics:
    probes: int = 0
    no_face: int = 0
    rank1_correct: int = 0  # closed set: the best match is the right person
    identified_at_threshold: int = 0  # the best match is the right person and clears the threshold
    false_match_at_threshold: int = 0  # the best match is someone else and clears the threshold
    extra: dict = field(default_factory=dict)

    def rates(self) -> dict[str, float]:
        with_face = self.probes - self.no_face
        return {
            "rank1": _ratio(self.rank1_correct, self.probes),
            "rank1_of_detected": _ratio(self.rank1_correct, with_face),
            "identified_at_threshold_rate": _ratio(self.identified_at_threshold, self.probes),
            "false_match_rate": _ratio(self.false_match_at_threshold, self.probes),
        }


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def score(people: list[str], ranked: list[Answer], thresholded: list[Answer], threshold: float) -> Metrics:
    """Metrics of one path; `people[i]` is who probe i really is (None-free)."""
    m = Metrics(probes=len(people))
    for person, r, t in zip(people, ranked, thresholded, strict=True):
        if not r.face_found:
            m.no_face += 1
            continue
        m.rank1_correct += r.top_subject == person
        if t.top_subject is not None and t.top_similarity is not None and t.top_similarity >= threshold:
            if t.top_subject == person:
                m.identified_at_threshold += 1
            else:
                m.false_match_at_threshold += 1
    return m


def agreement(service: list[Answer], brute: list[Answer]) -> dict[str, float]:
    """How often both paths pick the same gallery face (or both none), and how far their similarities differ."""
    same = compared = detection = 0
    deltas = []
    for s, b in zip(service, brute, strict=True):
        if s.face_found != b.face_found:
            detection += 1
            continue
        compared += 1
        same += s.top_face == b.top_face
        if s.top_face is not None and s.top_face == b.top_face:
            deltas.append(abs(s.top_similarity - b.top_similarity))
    return {"same_top_face": same, "compared": compared, "detection_disagreements": detection,
            "max_abs_similarity_delta": max(deltas) if deltas else 0.0}


def embed_all(engine, paths: list[Path]) -> dict[Path, tuple | None]:
    """(bbox, det_score, embedding) of every photo's largest face (None: no face), as search sees it."""
    from embeddings.engine import AnalyzeOptions, decode_image

    out = {}
    options = AnalyzeOptions(max_faces=1)
    for i, path in enumerate(paths):
        faces = engine.analyze(decode_image(path.read_bytes()), options).faces
        out[path] = (faces[0].bbox, faces[0].det_score, faces[0].embedding) if faces else None
        if (i + 1) % 500 == 0:
            log(f"embedded {i + 1}/{len(paths)} photos")
    return out


def same_answer(a: Answer, b: Answer) -> bool:
    if (a.face_found, a.top_face) != (b.face_found, b.top_face):
        return False
    return a.top_similarity is None or abs(a.top_similarity - b.top_similarity) < 1e-5


def at_threshold(answer: Answer, threshold: float) -> Answer:
    """What a search at `threshold` answers, given the closed-set best match."""
    if answer.top_similarity is None or answer.top_similarity >= threshold:
        return answer
    return Answer(face_found=True)


def run(stack: ServiceStack, people: dict[str, list[Path]], *, progress_every: int = 250,
        verify_every: int = 10, enrol_via: str = "jobs") -> dict:
    from django.conf import settings

    from bench.search_stack import SimpleFace

    threshold = float(settings.SEARCH_MATCH_THRESHOLD)  # this process's settings: the server's too
    engine = stack.engine()
    stack.ensure_vector_index(engine.model_id, engine.dimension)
    all_photos = [p for photos in people.values() for p in photos]
    started = time.perf_counter()
    analysed = embed_all(engine, all_photos)
    embed_s = time.perf_counter() - started
    split = split_people(people, {p: a is not None for p, a in analysed.items()})
    log(f"{len(split.gallery)} identities to enrol, {len(split.genuine)} genuine probes, "
        f"{len(split.impostors)} impostor probes")

    # Enrolment: one asset per enrolled photo, subject = the person.
    started = time.perf_counter()
    labels, assets, enrolled_faces = [], [], {}
    if enrol_via == "jobs":
        # The public API: POST /v1/index-jobs (inline images) run by a Celery worker process.
        stack.start_worker()
        rows = stack.enrol_via_jobs([(f"{person}/{path.name}", person, path.read_bytes())
                                     for person, path in split.gallery.items()], options={"max_faces": 1})
        enrolled_faces = {asset_id: len(row["faces"]) for asset_id, row in rows.items()}
    for person, path in split.gallery.items():
        bbox, det_score, embedding = analysed[path]
        asset_id = f"{person}/{path.name}"
        if enrol_via == "store":
            # The store's write path, as the worker calls it (embeddings.store.services.replace_asset_faces).
            stack.enrol(asset_id=asset_id, subject_id=person, model_id=engine.model_id,
                        faces=[SimpleFace(bbox, det_score, embedding)])
        labels.append(person)
        assets.append(asset_id)
    enrol_s = time.perf_counter() - started
    job_mismatches = sorted(a for a in assets if enrol_via == "jobs" and enrolled_faces.get(a) != 1)
    gallery = np.stack([analysed[path][2] for path in split.gallery.values()]).astype(np.float32)

    # The threshold the service applies when a request names none (SEARCH_MATCH_THRESHOLD).
    default_threshold = stack.search(split.gallery[labels[0]].read_bytes(), faces="largest")[0]["threshold"]
    results = {}
    started = time.perf_counter()
    ranked_by_kind = {}
    for kind, probes in (("genuine", split.genuine), ("impostor", split.impostors)):
        ranked_s, thresholded_s, ranked_b, thresholded_b = [], [], [], []
        ranked_by_kind[kind] = (ranked_s, ranked_b)
        checked = mismatched = 0
        for i, (_person, path) in enumerate(probes):
            data = path.read_bytes()
            # Closed-set ranking: the best gallery face whatever its similarity.
            body, _ = stack.search(data, faces="largest", threshold=-1, top_k=1)
            ranked = service_answer(body)
            ranked_s.append(ranked)
            thresholded_s.append(at_threshold(ranked, default_threshold))
            if i % verify_every == 0:
                # The service's own answer at its default threshold must be the same.
                body, _ = stack.search(data, faces="largest", top_k=1)
                checked += 1
                mismatched += not same_answer(service_answer(body), thresholded_s[-1])
            probe = analysed[path][2] if analysed[path] is not None else None
            ranked_b.append(brute_force(gallery, labels, assets, probe, None))
            thresholded_b.append(brute_force(gallery, labels, assets, probe, threshold))
            if (i + 1) % progress_every == 0:
                log(f"{kind}: {i + 1}/{len(probes)} probes searched")
        truth = [person for person, _ in probes]
        results[kind] = {
            "service": score(truth, ranked_s, thresholded_s, threshold),
            "brute_force": score(truth, ranked_b, thresholded_b, threshold),
            "agreement_ranked": agreement(ranked_s, ranked_b),
            "agreement_thresholded": agreement(thresholded_s, thresholded_b),
            "default_threshold_checks": {"checked": checked, "mismatched": mismatched},
        }
    search_s = time.perf_counter() - started
    genuine_people = [person for person, _ in split.genuine]
    sweep = {path: threshold_sweep(genuine_people, ranked_by_kind["genuine"][i], ranked_by_kind["impostor"][i])
             for i, path in enumerate(("service", "brute_force"))}
    return {
        "service_default_threshold": default_threshold, "enrolled_via": enrol_via,
        "enrolled_assets_without_exactly_one_face": job_mismatches,
        "model_id": engine.model_id, "dimension": engine.dimension,
        "det_size": list(engine.config.det_size), "threshold": threshold,
        "people": len(people), "photos": len(all_photos),
        "photos_without_face": sum(a is None for a in analysed.values()),
        "people_with_2_or_more_photos": split.multi_photo_people,
        "identities_enrolled": len(split.gallery),
        "people_not_enrolled_no_face": split.gallery_no_face,
        "people_enrolled_with_a_later_photo": split.gallery_first_photo_no_face,
        "genuine_probes": len(split.genuine), "impostor_probes": len(split.impostors),
        "results": results, "threshold_sweep": sweep, "server_errors_retried": list(stack.server_errors),
        "seconds": {"embed_all": round(embed_s, 1), "enrol": round(enrol_s, 1), "search": round(search_s, 1)},
    }


SWEEP = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60)


def threshold_sweep(genuine_people: list[str], genuine: list[Answer], impostors: list[Answer],
                    thresholds=SWEEP) -> list[dict]:
    """Open-set figures at other thresholds, from the closed-set best matches."""
    rows = []
    for t in thresholds:
        hits = sum(a.top_subject == p and a.top_similarity >= t for p, a in zip(genuine_people, genuine, strict=True)
                   if a.top_similarity is not None)
        wrong = sum(a.top_subject != p and a.top_similarity >= t for p, a in zip(genuine_people, genuine, strict=True)
                    if a.top_similarity is not None)
        false = sum(a.top_similarity is not None and a.top_similarity >= t for a in impostors)
        rows.append({"threshold": t, "identified": _ratio(hits, len(genuine)),
                     "genuine_false_match": _ratio(wrong, len(genuine)),
                     "impostor_false_match": _ratio(false, len(impostors))})
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def report(out: dict) -> str:
    lines = [
        f"enrolled via {out['enrolled_via']}"
        + (f" (assets not indexed with exactly one face: {out['enrolled_assets_without_exactly_one_face']})"
           if out["enrolled_via"] == "jobs" else ""),
        f"model {out['model_id']} ({out['dimension']}-d, det {out['det_size'][0]}), "
        f"threshold {out['threshold']}",
        f"photos {out['photos']} of {out['people']} people; no face found in {out['photos_without_face']}",
        f"identities enrolled {out['identities_enrolled']} (of {out['people_with_2_or_more_photos']} people "
        f"with >= 2 photos; {out['people_not_enrolled_no_face']} without any detectable face, "
        f"{out['people_enrolled_with_a_later_photo']} enrolled with a later photo)",
        f"genuine probes {out['genuine_probes']}, impostor probes {out['impostor_probes']}",
        "",
        f"{'':34}{'service (HTTP)':>16}{'brute force':>16}{'difference':>14}",
    ]
    gen, imp = out["results"]["genuine"], out["results"]["impostor"]
    s, b = gen["service"], gen["brute_force"]
    rows = [
        ("genuine probes without a face", s.no_face, b.no_face, None),
        ("rank-1 (all genuine probes)", s.rates()["rank1"], b.rates()["rank1"], "pct"),
        ("rank-1 (probes with a face)", s.rates()["rank1_of_detected"], b.rates()["rank1_of_detected"], "pct"),
        ("identified at threshold", s.rates()["identified_at_threshold_rate"],
         b.rates()["identified_at_threshold_rate"], "pct"),
        ("false match at threshold (gen.)", s.rates()["false_match_rate"], b.rates()["false_match_rate"], "pct"),
        ("impostor probes without a face", imp["service"].no_face, imp["brute_force"].no_face, None),
        ("false match at threshold (imp.)", imp["service"].rates()["false_match_rate"],
         imp["brute_force"].rates()["false_match_rate"], "pct"),
    ]
    for name, sv, bv, kind in rows:
        if kind == "pct":
            lines.append(f"{name:34}{_pct(sv):>16}{_pct(bv):>16}{100 * (sv - bv):>+12.2f} pp")
        else:
            lines.append(f"{name:34}{sv:>16}{bv:>16}{sv - bv:>+14}")
    for kind in ("genuine", "impostor"):
        for mode in ("ranked", "thresholded"):
            a = out["results"][kind][f"agreement_{mode}"]
            lines.append(f"{kind} {mode}: same best gallery face {a['same_top_face']}/{a['compared']}, "
                         f"detection disagreements {a['detection_disagreements']}, "
                         f"max |similarity delta| {a['max_abs_similarity_delta']:.2e}")
    for kind in ("genuine", "impostor"):
        c = out["results"][kind]["default_threshold_checks"]
        lines.append(f"{kind}: searches at the service's default threshold ({out['service_default_threshold']}) "
                     f"checked {c['checked']}, differing from the derived answer {c['mismatched']}")
    lines.append("threshold sweep (service; brute force identical when the line below says so):")
    lines.append(f"{'threshold':>10}{'identified':>12}{'gen. false':>12}{'impostor false':>16}")
    for row in out["threshold_sweep"]["service"]:
        lines.append(f"{row['threshold']:>10.2f}{_pct(row['identified']):>12}{_pct(row['genuine_false_match']):>12}"
                     f"{_pct(row['impostor_false_match']):>16}")
    lines.append(f"sweep identical for brute force: {out['threshold_sweep']['service'] == out['threshold_sweep']['brute_force']}")
    lines.append(f"5xx answers retried: {len(out['server_errors_retried'])}; time: {out['seconds']}")
    return "\n".join(lines)


def serialisable(out: dict) -> dict:
    def convert(value):
        if isinstance(value, Metrics):
            return {**asdict(value), **value.rates()}
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw-dir", type=Path, default=LFW_DIR)
    parser.add_argument("--limit-people", type=int, default=0, help="only the first N people (a quick run)")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--enrol-via", choices=["jobs", "store"], default="jobs",
                        help="jobs: POST /v1/index-jobs + a Celery worker (default); "
                             "store: embeddings.store.services.replace_asset_faces in this process")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on `kill` too
    people = lfw_people(args.lfw_dir)
    if args.limit_people:
        people = dict(list(people.items())[: args.limit_people])
    with ServiceStack() as stack:
        out = run(stack, people, enrol_via=args.enrol_via)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(serialisable(out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

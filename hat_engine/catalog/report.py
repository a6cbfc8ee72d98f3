"""The evidence beside the catalog: searched entries vs hand-scaled baselines, per hardware profile.

For each baseline: the BLEU difference at equal latency (the searched curve interpolated at the baseline's
latency) and the latency ratio at equal BLEU (the searched curve's latency where it reaches the baseline's
BLEU). Quality is the mean BLEU over the test sets; latency the measured p50 on the reference workload.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

from hat_engine.catalog.schema import CatalogEntry, parse_entry
from hat_engine.pareto import pareto_front


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, quality) points on the Pareto front, by latency."""
    return pareto_front(points, cost=lambda p: p[0], quality=lambda p: p[1])


def _interp(xs: list[float], ys: list[float], x: float) -> float | None:
    """Linear interpolation of y at x within the range of xs (sorted ascending); None outside it."""
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def compare(searched: list[CatalogEntry], baselines: dict[str, CatalogEntry]) -> list[dict]:
    """Per baseline: its latency and BLEU, the searched BLEU at that latency, the searched latency at its BLEU."""
    front = pareto([(e.latency_ms["p50"], e.mean_bleu) for e in searched])
    lats, bleus = [p[0] for p in front], [p[1] for p in front]
    rows = []
    for name, b in baselines.items():
        lat, bleu = b.latency_ms["p50"], b.mean_bleu
        at_latency = _interp(lats, bleus, lat)
        # the searched front's latency where its BLEU first reaches the baseline's (BLEU rises along the front)
        at_bleu = _interp(bleus, lats, bleu) if bleus and bleus[0] <= bleu <= bleus[-1] else None
        if at_bleu is None and bleus and bleus[0] >= bleu:
            at_bleu = lats[0]  # even the fastest searched entry is at least as good: an upper bound on its latency
        rows.append({
            "baseline": name, "latency_p50_ms": lat, "bleu": round(bleu, 2),
            "searched_bleu_at_equal_latency": None if at_latency is None else round(at_latency, 2),
            "bleu_gain": None if at_latency is None else round(at_latency - bleu, 2),
            "searched_latency_at_equal_bleu_ms": None if at_bleu is None else round(at_bleu, 2),
            "speedup_at_equal_bleu": None if at_bleu is None else round(lat / at_bleu, 2),
        })  # fmt: skip
    return rows


def arch_summary(entry: CatalogEntry) -> str:
    """`enc 256x6 ffn 853 h 3.3; dec 192x2 ffn 512 h 2.0 cross 1.5` (FFN width and heads averaged per layer)."""
    a = entry.arch

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    enc, dec = a.encoder_layers, a.decoder_layers
    return (f"enc {a.encoder_embed_dim}x{len(enc)} ffn {mean(x.ffn_dim for x in enc):.0f} "
            f"h {mean(x.self_heads for x in enc):.1f}; dec {a.decoder_embed_dim}x{len(dec)} "
            f"ffn {mean(x.ffn_dim for x in dec):.0f} h {mean(x.self_heads for x in dec):.1f} "
            f"cross {mean(x.cross_layers for x in dec):.1f}")  # fmt: skip


def shapes_by_profile(profile_ids: list[str], candidates: list[CatalogEntry]) -> list[str]:
    """How the searched architectures differ between profiles (HAT: GPUs liked wide-and-shallow, ARM CPUs
    deep-and-thin): each profile's searched archs by budget (every fp32 candidate, kept or dominated), and the
    architectures the profiles share."""
    lines = ["## Architectures per profile", "", "Every budget's search result, kept in the catalog or not.", "",
             "| profile | budget ms | p50 ms | BLEU | architecture |", "|---|---:|---:|---:|---|"]  # fmt: skip
    ids = {}
    for profile in profile_ids:
        fp32 = sorted((e for e in candidates if e.hardware_profile == profile and not is_int8(e)),
                      key=lambda e: e.latency_budget_ms)  # fmt: skip
        ids[profile] = {e.arch.arch_id() for e in fp32}
        for e in fp32:
            lines.append(f"| {profile} | {e.latency_budget_ms:g} | {e.latency_ms['p50']:.1f} | {e.mean_bleu:.2f} | "
                         f"{arch_summary(e)} |")  # fmt: skip
    if len(ids) > 1:
        shared = set.intersection(*ids.values())
        lines += ["", f"Architectures found on every profile: {len(shared)} of "
                  f"{', '.join(f'{len(v)} ({k})' for k, v in ids.items())}."]  # fmt: skip
    return lines + [""]


def finetune_section(records: list[dict]) -> list[str]:
    """Inherited vs fine-tuned weights (HAT Table 5), as measured by `hat catalog build --finetune`."""
    if not records:
        return []
    header = "| arch | entry | fine-tune | BLEU inherited | BLEU fine-tuned | kept |"
    lines = ["## Inherited vs fine-tuned weights", "", header, "|---|---|---|---|---|---|"]
    for r in records:
        inherited = " / ".join(f"{v:.2f}" for v in r["bleu_inherited"].values())
        tuned = " / ".join(f"{v:.2f}" for v in r["bleu_finetuned"].values())
        cost = f"{r['minutes']:g} min, {r['steps']} steps, {r['target_tokens']:,} tokens"
        kept = f"{r['kept']} ({r['note']})" if r.get("note") else str(r["kept"])
        lines.append(f"| {r['arch_id']} | {r['entry']} | {cost} | {inherited} | {tuned} | {kept} |")
    return lines + [""]


def is_int8(entry: CatalogEntry) -> bool:
    return all(a.format == "onnx-int8" for a in entry.artifacts)


def inherited(entries: list[CatalogEntry], finetune_records: list[dict]) -> list[CatalogEntry]:
    """The entries as the baselines are built, weights inherited from the SuperTransformer: a fine-tuned entry
    takes the BLEU its arch had before fine-tuning (same arch, so the same latency)."""
    before = {r["arch_id"]: r["bleu_inherited"] for r in finetune_records if r.get("kept")}
    return [replace(e, bleu=before[e.arch.arch_id()]) if e.arch.arch_id() in before else e for e in entries]


def plot_pareto(profile_id: str, searched: list[CatalogEntry], baselines: dict[str, CatalogEntry], png: Path,
                inherited_front: list[CatalogEntry] = ()) -> None:  # fmt: skip
    from hat_engine.train.plots import plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if inherited_front:
        front = pareto([(e.latency_ms["p50"], e.mean_bleu) for e in inherited_front])
        ax.plot(*zip(*front, strict=True), "s--", label="searched, fp32, inherited weights (vs baselines)",
                color="tab:gray", alpha=0.7)  # fmt: skip
    fp32 = [e for e in searched if not is_int8(e)]
    pts = sorted((e.latency_ms["p50"], e.mean_bleu) for e in fp32)
    if pts:
        ax.plot(*zip(*pts, strict=True), "o-", label="catalog, fp32", color="tab:blue")
    int8 = sorted((e.latency_ms["p50"], e.mean_bleu) for e in searched if is_int8(e))
    if int8:
        ax.plot(*zip(*int8, strict=True), "^", label="catalog, int8 (kept where BLEU holds)", color="tab:green")
    for name, b in baselines.items():
        ax.plot(b.latency_ms["p50"], b.mean_bleu, "x", color="tab:red", ms=8)
        ax.annotate(name, (b.latency_ms["p50"], b.mean_bleu), fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.plot([], [], "x", color="tab:red", label="hand-scaled baselines")
    ax.set_xlabel("measured latency p50 (ms), reference workload")
    ax.set_ylabel(f"mean BLEU ({', '.join(next(iter(searched)).bleu) if searched else 'test sets'})")
    ax.set_title(profile_id, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def predictor_section(profile, retest: dict | None) -> list[str]:
    """Markdown: the profile's latency predictor on its held-out archs, beside the measured test-retest error of
    the same measurement (`hat latency retest`): the floor a predictor's MAPE is judged against."""
    ref = profile.predictor
    if ref is None:
        return []
    lines = [f"Latency predictor `{ref.path}`: {ref.n_train} archs fitted, {ref.n_test} held out: "
             f"MAPE **{ref.mape:.2f} %**, Kendall τ **{ref.kendall_tau:.3f}**."]  # fmt: skip
    errors = (retest or {}).get("errors") or {}
    if errors:
        shown = ", ".join(f"{name} {e['mean_pct']:.2f} %" for name, e in errors.items())
        archs = max(e.get("archs", 0) for e in errors.values())
        lines += ["", f"Test-retest (`{retest['file']}`: {archs} archs measured twice, apart in time; mean relative "
                  f"difference per statistic): {shown}. The predictor fits the `fitted` figure "
                  "(the ratio to the reference arch times the run's median reference p50)."]  # fmt: skip
    return lines + [""]


def signature_section(signatures: dict) -> list[str]:
    """Markdown: each test set's sentences, references and sacrebleu signatures (`EntryBuilder.signatures`)."""
    lines = ["## Test sets", "", "| set | sentences | references | BLEU signature | chrF signature |",
             "|---|---:|---:|---|---|"]  # fmt: skip
    for name, s in signatures.items():
        cells = [name, s.get("sentences"), s.get("references"), f"`{s.get('bleu')}`", f"`{s.get('chrf')}`"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines + [""]


def finetuned_comparison(candidates: list[CatalogEntry], baselines: dict[str, CatalogEntry], tuned: dict[str, dict],
                         finetune_records: list[dict]) -> list[dict]:  # fmt: skip
    """Fine-tuned vs fine-tuned: every fp32 searched entry whose arch was fine-tuned (`finetune_records`), with its
    fine-tuned BLEU whether or not the build kept those weights, against the baselines with their fine-tuned BLEU
    (`policy.finetune_baselines`, taken whether it rose or not). Like with like: counting a searched arch only
    where fine-tuning helped it would compare the better of two scores with a baseline's one. Latency: the same
    arch's measured p50."""
    after = {r["arch_id"]: r["bleu_finetuned"] for r in finetune_records}
    searched = [replace(e, bleu=after[e.arch.arch_id()]) for e in candidates
                if not is_int8(e) and e.arch.arch_id() in after]  # fmt: skip
    mine = {name: replace(b, bleu=tuned[name]["bleu_finetuned"]) for name, b in baselines.items() if name in tuned}
    return compare(searched, mine) if searched and mine else []


def comparison_table(rows: list[dict]) -> list[str]:
    lines = ["| baseline | p50 ms | BLEU | searched BLEU at equal latency | gain | searched ms at equal BLEU "
             "| speed-up |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        cells = [r["searched_bleu_at_equal_latency"], r["bleu_gain"], r["searched_latency_at_equal_bleu_ms"],
                 r["speedup_at_equal_bleu"]]  # fmt: skip
        shown = " | ".join("n/a" if c is None else f"{c:g}" for c in cells)
        lines.append(f"| {r['baseline']} | {r['latency_p50_ms']:.1f} | {r['bleu']:.2f} | {shown} |")
    return lines


def write_report(out: Path, catalog, baselines: list[tuple[str, CatalogEntry]], searches: dict[str, dict],
                 candidates: list[CatalogEntry] | None = None, tuned_baselines: dict[str, dict] | None = None,
                 retests: dict[str, dict] | None = None) -> dict:  # fmt: skip
    """`report.json` (baselines measured like entries, comparisons, search cost) and `REPORT.md` with a Pareto
    plot per profile. `baselines`: (name, entry) pairs. `candidates`: every searched entry built, before
    dominated ones were dropped (default: the catalog's); the comparison with the baselines runs on them, as the
    search found them. `tuned_baselines`: by name, the baselines' fine-tuned scores (`policy.finetune_baselines`),
    for the fine-tuned vs fine-tuned comparison. `retests`: by profile, `hat latency retest --json` records."""
    tuned_baselines, retests = tuned_baselines or {}, retests or {}
    candidates = list(catalog.entries) if candidates is None else candidates
    report = {"baselines": [{**b.to_dict(), "baseline": name} for name, b in baselines], "search": searches,
              "comparisons": {}, "comparisons_finetuned": {}, "finetuned_baselines": tuned_baselines,
              "candidates": [c.to_dict() for c in candidates],
              "sacrebleu": catalog.extra.get("sacrebleu"), "retest": retests}  # fmt: skip
    w = catalog.reference_workload
    ban = f"the repeat ban at n = {w.no_repeat_ngram}, as served" if w.no_repeat_ngram else "no repeat ban"
    lines = ["# Catalog report", "", "Measured on the hosts named by each profile; latency is the p50 of the",
             f"reference workload (batch {w.batch_size}, {w.source_tokens} source tokens, {w.target_tokens} decoder "
             f"steps, beam {w.beam}, {ban}); BLEU is the mean over the test sets listed under Test sets (sacrebleu, "
             f"beam {w.beam}).", ""]  # fmt: skip
    for p in catalog.hardware_profiles:
        searched = catalog.entries_for(p.id)
        mine = {name: b for name, b in baselines if b.hardware_profile == p.id}
        # like with like: baselines are fp32 with inherited weights
        found = [c for c in candidates if c.hardware_profile == p.id and not is_int8(c)]
        fp32 = inherited(found, catalog.extra.get("finetune") or [])
        rows = compare(fp32, mine) if fp32 else []
        report["comparisons"][p.id] = rows
        png = f"pareto-{p.id}.png"
        if searched:
            plot_pareto(p.id, searched, mine, Path(out) / png, inherited_front=fp32)
        lines += [f"## {p.id}", "", f"![Pareto: {p.id}]({png})", ""]
        lines += predictor_section(p, retests.get(p.id))
        test_sets = " / ".join(searched[0].bleu) if searched else "test sets"
        lines += [f"| entry | budget ms | p50 ms | p95 ms | params | BLEU {test_sets} | mean |",
                  "|---|---:|---:|---:|---:|---|---:|"]  # fmt: skip
        for e in searched:
            bleu = " / ".join(f"{v:.1f}" for v in e.bleu.values())
            lines.append(f"| {e.id} | {e.latency_budget_ms:g} | {e.latency_ms['p50']:.1f} | "
                         f"{e.latency_ms['p95']:.1f} | {e.params:,} | {bleu} | {e.mean_bleu:.2f} |")  # fmt: skip
        lines += ["", f"Against the hand-scaled baselines: all {len(fp32)} searched fp32 entries built for this "
                  "profile (dominated ones included), with inherited weights (a fine-tuned entry counts with its BLEU "
                  "before fine-tuning), as the baselines are built.", ""]  # fmt: skip
        lines += comparison_table(rows)
        tuned_rows = finetuned_comparison([c for c in candidates if c.hardware_profile == p.id], mine, tuned_baselines,
                                          catalog.extra.get("finetune") or [])  # fmt: skip
        report["comparisons_finetuned"][p.id] = tuned_rows
        if tuned_rows:
            lines += ["", "Fine-tuned vs fine-tuned: the fine-tuned searched fp32 entries (kept or not) against the "
                      "baselines fine-tuned alike (same steps, same data; the same arch's measured latency).",
                      ""]  # fmt: skip
            lines += comparison_table(tuned_rows)
        cost = searches.get(p.id, {})
        if cost:
            lines += ["", f"Search: budgets {cost.get('budgets')}, {cost.get('generations')} generations x "
                      f"{cost.get('population')}, minutes per budget "
                      f"{[round(m, 2) for m in cost.get('minutes_per_budget', [])]}."]  # fmt: skip
        lines.append("")
    lines += signature_section(catalog.extra.get("sacrebleu") or {})
    lines += shapes_by_profile([p.id for p in catalog.hardware_profiles], candidates)
    lines += finetune_section(catalog.extra.get("finetune") or [])
    report["finetune"] = catalog.extra.get("finetune") or []
    report["int8"] = catalog.extra.get("int8") or {}
    (Path(out) / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (Path(out) / "REPORT.md").write_text("\n".join(lines) + "\n")
    return report


@dataclass(frozen=True)
class RecordedReport:
    """What a build's report.json holds beyond catalog.json, typed: what `write_report` was written from."""

    baselines: list[tuple[str, CatalogEntry]]  # (baseline name, entry)
    candidates: list[CatalogEntry]  # every searched entry built, dominated ones included
    searches: dict[str, dict]  # by profile: the search's cost
    retests: dict[str, dict]  # by profile
    tuned_baselines: dict[str, dict]  # by baseline name


def read_report(folder: Path) -> RecordedReport | None:
    """The report.json `write_report` left in `folder`, or None where there is none."""
    path = Path(folder) / "report.json"
    if not path.is_file():
        return None
    r = json.loads(path.read_text())
    baselines = []
    for i, b in enumerate(r.get("baselines", [])):
        fields = {k: v for k, v in b.items() if k != "baseline"}
        baselines.append((b["baseline"], parse_entry(fields, f"{path}: baselines[{i}]")))
    candidates = [parse_entry(c, f"{path}: candidates[{i}]") for i, c in enumerate(r.get("candidates", []))]
    return RecordedReport(baselines, candidates, r.get("search") or {}, r.get("retest") or {},
                          r.get("finetuned_baselines") or {})  # fmt: skip


def write_merged_report(out: Path, catalog, folders: list[tuple[Path, set[str]]]) -> list[Path]:
    """report.json, REPORT.md and the Pareto plots of a merged catalog (`schema.merge`), from the report.json of
    each merged folder, given in merge order with the profiles its catalog holds: what a later folder reports
    for a profile replaces an earlier one's, as its entries do. Returns the folders that had no report.json."""
    baselines: dict[str, tuple[str, CatalogEntry]] = {}
    candidates: dict[str, CatalogEntry] = {}
    searches, tuned, retests, missing = {}, {}, {}, []
    for folder, profiles in folders:
        recorded = read_report(folder)
        if recorded is None:
            missing.append(Path(folder))
            continue
        baselines = {k: v for k, v in baselines.items() if v[1].hardware_profile not in profiles}
        candidates = {k: v for k, v in candidates.items() if v.hardware_profile not in profiles}
        baselines.update({b.id: (name, b) for name, b in recorded.baselines})
        candidates.update({c.id: c for c in recorded.candidates})
        searches.update(recorded.searches)
        retests.update(recorded.retests)
        tuned.update(recorded.tuned_baselines)
    write_report(out, catalog, list(baselines.values()), searches, list(candidates.values()), tuned, retests)
    return missing

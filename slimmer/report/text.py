"""The human form of a report, for a terminal."""

from __future__ import annotations

import shlex
from typing import Any

from slimmer.oci.digest import short
from slimmer.report.model import LARGEST, ImageReport, Report
from slimmer.units import format_duration
from slimmer.units import format_size as human


def _dedupe_lines(d: dict[str, Any]) -> list[str]:
    lines = [f"  deduplicated: {d['files']} files written as hardlinks to an identical file "
             f"({len(d['groups'])} groups), {human(d['bytes'])} saved"]
    for g in sorted(d["groups"], key=lambda g: -g["size"] * (len(g["paths"]) - 1))[:LARGEST]:
        lines.append(f"    {human(g['size']):>10} x{len(g['paths'])}  /{g['paths'][0]}"
                     f"  (layer {g['layer']})")
    if d["cross_layer_bytes"]:
        lines.append(f"  identical files left in different layers: "
                     f"{human(d['cross_layer_bytes'])} in {len(d['cross_layer'])} sets "
                     "(lower layers are not rewritten for them)")
        for c in d["cross_layer"][:LARGEST]:
            lines.append(f"    {human(c['size']):>10} x{len(c['paths'])}  /{c['paths'][0]}  "
                         f"(layers {', '.join(str(n) for n in sorted(set(c['layers'])))})")
    return lines


def _ml_lines(ml: dict[str, Any]) -> list[str]:
    lines = [f"  ML image ({', '.join(ml['stacks'])}); profiles for ML images:"]
    for name, v in sorted(ml["profiles"].items()):
        what = "removes" if v["chosen"] else ("would remove" if v["bytes"] else "does not apply")
        line = f"    {name:<20} {what:<14} {human(v['bytes']):>10}"
        if v["bytes"] and not v["chosen"] and v["warning"]:
            line += f"  (warning: {v['warning']})"
        lines.append(line)
    return lines


def render_text(report: Report) -> str:
    """Human summary: a table of layers per image, what was removed and why."""
    lines: list[str] = []
    verb = "slimmed" if report.mode == "push" else "analysis of"
    head = f"{verb} {report.source}"
    if report.destination:
        head += f" -> {report.destination}"
    lines.append(head)
    lines.append(f"profiles: {', '.join(report.profiles) or 'none'}")
    for img in report.images:
        lines.append("")
        title = f"image {img.platform or ''} {short(img.source_digest)}".replace("  ", " ")
        if img.digest:
            title += f" -> {short(img.digest)}"
        if img.variant:
            title += f" ({img.variant} variant of the image above)"
        lines.append(title)
        lines.append(f"  {'layer':>5}  {'from':<14} {'mode':<11} {'before':>10} "
                     f"{'after':>10} {'tar before':>11} {'tar after':>11} {'removed':>9}")
        for n, ly in enumerate(img.layers):
            src = ",".join(str(i["index"]) for i in ly.inputs)
            lines.append(
                f"  {n:>5}  {src:<14} {ly.mode:<11} {human(ly.size_before):>10} "
                f"{human(ly.size_after):>10} {human(ly.tar_before):>11} "
                f"{human(ly.tar_after):>11} {human(ly.removed_bytes):>9}"
                + ("  from cache" if ly.cached else ""))
        if img.size_after is not None:
            lines.append(f"  total: {human(img.size_before)} -> {human(img.size_after)} "
                         f"compressed; removed {img.removed_files} files, "
                         f"{human(img.removed_bytes)} uncompressed")
            if img.variant:
                continue    # what it removed is what the image above removed
        else:
            tar_after = sum(ly.tar_after or 0 for ly in img.layers)
            lines.append(f"  total: {human(img.size_before)} compressed now; tar "
                         f"{human(sum(ly.tar_before or 0 for ly in img.layers))} -> "
                         f"{human(tar_after)}; would remove {img.removed_files} files, "
                         f"{human(img.removed_bytes)}")
        if img.removed_by_profile:
            lines.append("  removed by profile:")
            for name, v in sorted(img.removed_by_profile.items(), key=lambda x: -x[1]["bytes"]):
                lines.append(f"    {name:<20} {v['files']:>7} files {human(v['bytes']):>10}")
            lines.append("  removed by rule:")
            for name, v in sorted(img.removed_by_rule.items(), key=lambda x: -x[1]["bytes"]):
                lines.append(f"    {name:<36} {v['files']:>7} files {human(v['bytes']):>10}")
        if img.largest_removed:
            lines.append("  largest removed files:")
            for f in img.largest_removed:
                lines.append(f"    {human(f['size']):>10}  /{f['path']}  ({f['rule']})")
        if img.wasted_bytes:
            lines.append(f"  wasted in the input (overwritten or deleted by later layers): "
                         f"{human(img.wasted_bytes)}")
        protected = [o for o in img.overrides if not o["reason"].startswith("kept by ")]
        for o in protected[:20]:
            lines.append(f"  kept /{o['path']}: rule {o['rule']} overridden ({o['reason']})")
        if len(protected) > 20:
            lines.append(f"  ... and {len(protected) - 20} more protected paths")
        by_keep: dict[tuple[str, str], int] = {}
        for o in img.overrides:
            if o["reason"].startswith("kept by "):
                key = (o["rule"], o["reason"][len("kept by "):])
                by_keep[key] = by_keep.get(key, 0) + 1
        for (rule, keep), count in sorted(by_keep.items()):
            lines.append(f"  kept {count} files matched by {rule}: keep rule {keep}")
        _cuda(img, lines)
        if img.dedupe is not None:
            lines.extend(_dedupe_lines(img.dedupe))
        listed = set()
        if img.ml is not None:
            lines.extend(_ml_lines(img.ml))
            listed = set(img.ml["profiles"])
        others = {k: v for k, v in img.other_profiles.items() if k not in listed}
        if others:
            lines.append("  profiles not chosen would also remove:")
            for name, size in sorted(others.items()):
                lines.append(f"    {name:<20} {human(size):>10}")
    for w in report.warnings:
        lines.append(f"warning: {w}")
    for sig in report.source_signatures or ():
        lines.append(f"source signature verified: key {str(sig.get('key_id'))[:16]} "
                     f"({sig.get('algorithm')}), signed {sig.get('docker_reference')}")
    if report.smoke is not None:
        lines.append(f"smoke test passed: {shlex.join(report.smoke['cmd'])} exited 0 in the "
                     f"slimmed image after {format_duration(report.smoke['seconds'])} "
                     f"({report.smoke.get('runtime')})")
    if report.coldstart is not None:
        lines.append(report.coldstart.render_text().rstrip("\n"))
    if report.digest:
        lines.append(f"digest: {report.digest}")
    for att in report.attachments:
        lines.append(f"{att.kind}: {att.reference}" + (f" ({att.note})" if att.note else ""))
    return "\n".join(lines) + "\n"


CUDA_SHOWN = 20


def _cuda(img: ImageReport, lines: list[str]) -> None:
    """The ``--cuda-arch`` part of an image: totals, then the biggest libraries."""
    total = img.cuda_summary
    if total is None:
        return
    lines.append(f"  GPU code for {', '.join(total['gpus'])}"
                 f"{'' if total['ptx'] else ' (no PTX)'}: {total['pruned']} of "
                 f"{total['libraries']} CUDA libraries pruned, fat binaries "
                 f"{human(total['code_before'])} -> {human(total['code_after'])}"
                 + (f"; {total['flagged']} left unchanged (see warnings)"
                    if total['flagged'] else ""))
    shown = sorted(img.cuda, key=lambda c: (-c["code_before"], c["path"]))
    for c in shown[:CUDA_SHOWN]:
        kept = ",".join(c["kept"]) if c["status"] == "pruned" else c["status"]
        lines.append(f"    {human(c['code_before']):>10} -> {human(c['code_after']):>10}  "
                     f"/{c['path']}  ({kept})")
    if len(shown) > CUDA_SHOWN:
        lines.append(f"    ... and {len(shown) - CUDA_SHOWN} more")

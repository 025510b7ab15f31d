#!/usr/bin/env python3
"""Side-by-side comparison of kbgap with the wesng peer (wes.py) on the wesng validation fixtures.

For every `*systeminfo*.txt` under `<fixtures>/systeminfo/wesng-validation/` this runs
`kbgap scan --json` and `wes` (wesng 1.0.3 from PyPI), collects the missing-KB set of each,
explains every disagreement mechanically (kbgap's catalog, kbgap explain, the wesng definitions),
scores both tools against the Windows Update Agent lists of the same-day pairs, and writes
`docs/wesng-comparison.md`.

With `--bench` it instead measures per-host scan time and peak RSS of both tools and appends the
figures to `BENCHMARKS.md`.

Python 3 standard library only. Typical use, from the workspace root:

    cargo build --release -p kbgap-cli
    python3 scripts/compare-wesng.py --install-wesng --db target/compare.db --import-archive
    python3 scripts/compare-wesng.py --db target/compare.db --bench
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WESNG_VERSION = "1.0.3"
# SubTypes kbgap does not report as missing security updates (detection.md §5 rule 11).
OUT_OF_SCOPE_SUBTYPES = {"update", "preview rollup", "servicing stack update", "setup du"}
# The first CVRF document (MSRC publishes CVRF from April 2016; earlier bulletins are not in it).
CVRF_START = "20160412"
# Months without Windows 10/11/Server 2016+ Vendor Fix rows in the MSRC archive fixture (detection.md §6).
ARCHIVE_GAP_MONTHS = {"201701", "201702", "202411", "202501", "202503", "202504", "202505", "202508",
                      "202510", "202604", "202606", "202607", "202608"}
KB_RE = re.compile(r"KB(\d{5,8})", re.IGNORECASE)
DATE_RE = re.compile(r"_(\d{8})_")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def die(msg: str) -> None:
    print(f"compare-wesng: error: {msg}", file=sys.stderr)
    sys.exit(2)


def decode(data: bytes) -> str:
    """Decodes a Windows text capture: UTF-16 (BOM or NUL pattern), UTF-8, else cp1252."""
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return data.decode("utf-16")
    if len(data) > 4 and data[1:2] == b"\x00" and data[3:4] == b"\x00":
        return data.decode("utf-16-le", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def kb_list(kbs, limit: int = 12) -> str:
    """`KB1, KB2, ... (+n more)` sorted newest-number first."""
    items = sorted(kbs, key=lambda k: int(k), reverse=True)
    shown = ", ".join(f"KB{k}" for k in items[:limit])
    if len(items) > limit:
        shown += f", … (+{len(items) - limit})"
    return shown or "—"


def as_of_of(name: str) -> str | None:
    m = DATE_RE.search(name)
    if not m:
        return None
    d = m.group(1)
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def installed_kbs(path: Path) -> set[str]:
    """KB numbers listed in a systeminfo capture (systeminfo names KBs only in its hotfix list)."""
    return set(KB_RE.findall(decode(path.read_bytes())))


# --------------------------------------------------------------------------------------------
# kbgap
# --------------------------------------------------------------------------------------------

class Kbgap:
    """Runs the kbgap binary; caches `catalog show` answers (they load only a few documents)."""

    def __init__(self, binary: Path, db: Path, cache: Path):
        self.binary, self.db, self.cache_path = binary, db, cache
        self.show_cache: dict[str, dict | None] = {}
        if cache.exists():
            try:
                self.show_cache = json.loads(cache.read_text())
            except json.JSONDecodeError:
                self.show_cache = {}

    def base(self) -> list[str]:
        return [str(self.binary), "--db", str(self.db)]

    def save(self) -> None:
        self.cache_path.write_text(json.dumps(self.show_cache))

    def show(self, kb: str) -> dict | None:
        """`kbgap catalog show KB --json`, or None when the catalog does not know the KB."""
        if kb not in self.show_cache:
            p = run(self.base() + ["catalog", "show", kb, "--json"])
            val = None
            if p.returncode == 0 and p.stdout.strip():
                try:
                    val = json.loads(p.stdout)
                except json.JSONDecodeError:
                    val = None
            self.show_cache[kb] = val
        return self.show_cache[kb]

    def prefetch(self, kbs, jobs: int = 2) -> None:
        todo = [k for k in set(kbs) if k not in self.show_cache]
        with ThreadPoolExecutor(jobs) as ex:
            list(ex.map(self.show, todo))

    def supersedes(self, kb: str) -> list[str]:
        s = self.show(kb)
        return [str(x) for x in (s or {}).get("supersedes", [])] if s else []

    def closure_down(self, roots) -> dict[str, str]:
        """Every KB transitively superseded by `roots` (per kbgap's catalog) -> the root covering it."""
        seen: dict[str, str] = {}
        frontier = [(r, r) for r in roots]
        while frontier:
            self.prefetch([k for k, _ in frontier])
            nxt = []
            for kb, root in frontier:
                for s in self.supersedes(kb):
                    s = digits(s)
                    if s and s not in seen and s not in roots:
                        seen[s] = root
                        nxt.append((s, root))
            frontier = nxt
        return seen

    def scan(self, path: Path, as_of: str | None) -> dict:
        cmd = self.base() + ["scan", str(path), "--json"]
        if as_of:
            cmd += ["--as-of", as_of]
        p = run(cmd)
        if p.returncode not in (0, 1, 2):
            return {"error": f"exit {p.returncode}: {p.stderr.strip()[:300]}"}
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"error": f"exit {p.returncode}, no JSON: {p.stderr.strip()[:300]}"}
        return out[0] if out else {"error": "no device in output"}

    def explain(self, path: Path, kb: str, as_of: str | None) -> str:
        cmd = self.base() + ["explain", str(path), kb]
        if as_of:
            cmd += ["--as-of", as_of]
        p = run(cmd)
        for line in p.stdout.splitlines():
            if line.startswith(f"KB{kb} "):
                return line[len(f"KB{kb} "):].strip()
        return f"explain failed (exit {p.returncode}): {p.stderr.strip()[:200]}"


def digits(s) -> str:
    m = re.search(r"\d+", str(s))
    return m.group(0) if m else ""


def show_products(show: dict) -> set[str]:
    """Product ids a KB applies to, from `catalog show --json` (tolerant of field shapes)."""
    out = set()
    for p in show.get("products", []) or []:
        if isinstance(p, dict):
            pid = p.get("id") or p.get("product_id")
            if pid is not None:
                out.add(str(pid))
        else:
            m = re.search(r"\(([^()]+)\)\s*$", str(p))
            out.add(m.group(1) if m else str(p))
    return out


def subtypes(show: dict) -> list[str]:
    return [str(t) for t in show.get("sub_types", []) or []]


def device_products(dev: dict) -> set[str]:
    out = set()
    for p in dev.get("products", []) or []:
        m = re.search(r"\(([^()]+)\)\s*$", p)
        if m:
            out.add(m.group(1))
    return out


# --------------------------------------------------------------------------------------------
# wesng
# --------------------------------------------------------------------------------------------

def install_wesng(venv: Path) -> None:
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"wesng=={WESNG_VERSION}", "chardet"],
                   check=True)


class Definitions:
    """The wesng definitions: per KB the products, dates and Supersedes values (for reasons)."""

    def __init__(self, zip_path: Path):
        self.zip_path = zip_path
        self.kb_rows: dict[str, list[tuple[str, str]]] = defaultdict(list)  # kb -> [(date, product)]
        self.custom_kbs: set[str] = set()
        self.superseded_values: dict[str, set[str]] = defaultdict(set)  # product -> kbs in Supersedes
        with zipfile.ZipFile(zip_path) as z:
            for name in z.namelist():
                if not name.endswith(".csv"):
                    continue
                custom = name.startswith("Custom")
                with z.open(name) as raw:
                    text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
                    for row in csv.DictReader(line for line in text if not line.startswith("#")):
                        kb = row.get("BulletinKB") or ""
                        prod = row.get("AffectedProduct") or ""
                        if kb.isdigit():
                            self.kb_rows[kb].append((row.get("DatePosted") or "", prod))
                            if custom:
                                self.custom_kbs.add(kb)
                        for s in (row.get("Supersedes") or "").split(";"):
                            if s.isdigit():
                                self.superseded_values[prod].add(s)

    def filtered_zip(self, as_of: str, work: Path) -> Path:
        """A copy of the definitions without rows posted after `as_of` (approximate as-of)."""
        ymd = as_of.replace("-", "")
        out = work / f"definitions-asof-{ymd}.zip"
        if out.exists():
            return out
        tmp = out.with_suffix(".tmp")
        with zipfile.ZipFile(self.zip_path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
            for name in zin.namelist():
                data = zin.read(name)
                if name.endswith(".csv"):
                    data = filter_csv(data, ymd)
                zout.writestr(name, data)
        tmp.rename(out)
        return out


def filter_csv(data: bytes, ymd: str) -> bytes:
    """Drops the rows of a wesng CSV whose DatePosted is after `ymd`; keeps header and `#` lines."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    text = io.StringIO(data.decode("utf-8", errors="replace"), newline="")
    header = True
    for line in _logical_lines(text):
        if line.startswith("#"):
            buf.write(line)
            continue
        row = next(csv.reader([line]))
        if header or not row or not row[0].isdigit() or row[0] <= ymd:
            writer.writerow(row)
        header = False
    return buf.getvalue().encode("utf-8")


def _logical_lines(text: io.StringIO):
    """Physical lines joined while a quoted field is open (CSV records spanning lines)."""
    pending = ""
    for line in text:
        pending += line
        if pending.count('"') % 2 == 0:
            yield pending
            pending = ""
    if pending:
        yield pending


@dataclass
class WesResult:
    ok: bool
    exit: int
    message: str = ""
    product: str = ""
    build: str = ""
    missing_reported: int | None = None
    kbs: dict[str, str] = field(default_factory=dict)  # kb -> earliest DatePosted
    non_kb: Counter = field(default_factory=Counter)  # BulletinKB text -> rows
    rows: int = 0
    service_pack: bool = False


def run_wes(venv: Path, path: Path, definitions: Path, out_csv: Path, reuse: bool) -> WesResult:
    log = out_csv.with_suffix(".log")
    key = f"{path}|{definitions}|{WESNG_VERSION}"
    cached = None
    if reuse and log.exists():
        cached = json.loads(log.read_text())
        if cached.get("key") != key:
            cached = None
    if cached is None:
        if out_csv.exists():
            out_csv.unlink()
        p = run([str(venv / "bin" / "wes"), str(path), "--definitions", str(definitions), "-o", str(out_csv)])
        cached = {"key": key, "exit": p.returncode, "text": p.stdout + p.stderr}
        log.write_text(json.dumps(cached))
    returncode = cached["exit"]
    text = re.sub(r"\x1b\[[0-9;]*m", "", cached["text"])
    res = WesResult(ok=returncode == 0, exit=returncode)
    m = re.search(r"- Name: (.*)", text)
    res.product = m.group(1).strip() if m else ""
    m = re.search(r"- Build: (.*)", text)
    res.build = m.group(1).strip() if m else ""
    m = re.search(r"Missing patches: (\d+)", text)
    res.missing_reported = int(m.group(1)) if m else None
    if returncode != 0:
        errs = [line.strip() for line in text.splitlines() if line.startswith("[-]") or "Error" in line]
        res.message = (errs[-1] if errs else text.strip().splitlines()[-1] if text.strip() else "")[:200]
        return res
    if "No vulnerabilities found" in text:
        res.message = "no vulnerabilities found"
    if out_csv.exists():
        with out_csv.open(newline="", encoding="utf-8", errors="replace") as f:
            for row in csv.DictReader(f):
                res.rows += 1
                if (row.get("CVE") or "").startswith("SP"):
                    res.service_pack = True
                    continue
                kb = row.get("BulletinKB") or ""
                if kb.isdigit():
                    d = row.get("DatePosted") or ""
                    res.kbs[kb] = min(res.kbs.get(kb, d), d)
                else:
                    res.non_kb[kb] += 1
    return res


def parse_wua(path: Path) -> dict[str, str]:
    out = {}
    for line in decode(path.read_bytes()).splitlines():
        m = re.match(r"\s*KB(\d+):\s*(.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

@dataclass
class Row:
    file: str
    as_of: str | None
    dev: dict
    wes: WesResult
    kbgap: set[str]
    wesng: set[str]
    reasons_wes_only: dict[str, str] = field(default_factory=dict)  # kb -> reason
    reasons_kbgap_only: dict[str, str] = field(default_factory=dict)
    wua: dict | None = None


def generic(reason: str) -> str:
    """A reason with its detail, KB numbers and counts removed, to group reasons into classes."""
    r = reason.split(" — ")[0]
    r = re.sub(r"^kbgap: \(.*\) is not a candidate for this device.*",
               "kbgap: not a candidate for this device (the KB applies to other products)", r)
    return re.sub(r"KB\d+", "KB…", r)


def classify(row: Row, path: Path, kg: Kbgap, defs: Definitions, explain_budget: list[int]) -> None:
    dev, wes = row.dev, row.wes
    installed = installed_kbs(path)
    wes_only = row.wesng - row.kbgap
    kbgap_only = row.kbgap - row.wesng
    kg.prefetch(wes_only | kbgap_only | installed | row.kbgap)
    by_installed = kg.closure_down(installed)
    by_finding = kg.closure_down(row.kbgap)
    dprods = device_products(dev)
    ymd = (row.as_of or "").replace("-", "")

    for kb in sorted(wes_only, key=int):
        show = kg.show(kb)
        posted = wes.kbs.get(kb, "")
        if show is None:
            if posted and posted < CVRF_START:
                r = "pre-2016 bulletin: not in CVRF (out of kbgap's scope)"
            elif posted[:6] in ARCHIVE_GAP_MONTHS:
                r = ("posted in a month whose Windows rows the MSRC archive fixture lacks "
                     f"(fixture gap) — {posted[:4]}-{posted[4:6]}")
            elif kb in defs.custom_kbs:
                r = "wesng custom definition (service pack / hand-added), not an MSRC Vendor Fix"
            else:
                r = "not a Vendor Fix KB in kbgap's CVRF catalog"
        elif not dprods:
            r = "kbgap maps the device to no CVRF product (unmapped: see its notes), so reports nothing"
        elif kb in installed:
            r = "listed as installed on the device (wesng ignores the installed KB)"
        elif subtypes(show) and all(t.lower() in OUT_OF_SCOPE_SUBTYPES for t in subtypes(show)):
            r = f"out-of-scope sub-type ({', '.join(subtypes(show))})"
        elif kb in by_installed:
            r = f"superseded by installed KB{by_installed[kb]} (kbgap's supersedence closure)"
        elif kb in by_finding:
            r = f"absorbed: superseded by kbgap's finding KB{by_finding[kb]} (chain head only)"
        elif dprods and not (show_products(show) & dprods):
            comp = [p.get("name", "") for p in show.get("products", []) if isinstance(p, dict)
                    and wes.product and wes.product in p.get("name", "") and p.get("name") != wes.product]
            if comp:
                what = re.sub(r"\s+on\s+.*$", "", comp[0]) or comp[0]
                r = ("for a component on this OS that kbgap does not assume installed (needs inventory); "
                     f"wesng's substring product match includes it — {what}")
            else:
                r = f"not for the device's products: wesng's product match is wrong or too wide — '{wes.product}'"
        elif ymd and str(show.get("release_date", ""))[:10].replace("-", "") > ymd:
            r = "released after the as-of date per MSRC (wesng DatePosted earlier)"
        else:
            newer = [f for f in row.kbgap if (kg.show(f) or {}).get("release_date", "") >= show.get("release_date", "~")]
            if explain_budget[0] > 0:
                explain_budget[0] -= 1
                r = "kbgap: " + kg.explain(path, kb, row.as_of)
            elif newer:
                r = (f"inferred (per-file explain limit): older than kbgap's finding KB{max(newer, key=int)} "
                     "for the same product, so included in its series")
            else:
                r = "unclassified (per-file explain limit reached)"
        row.reasons_wes_only[kb] = r

    for kb in sorted(kbgap_only, key=int):
        rows = defs.kb_rows.get(kb, [])
        prod = wes.product
        if not wes.ok:
            r = "wesng failed on this file"
        elif not rows:
            r = "KB absent from the wesng definitions"
        elif prod and not any(prod in p for _, p in rows):
            r = f"wesng's product matches none of the KB's rows (stale build table / naming) — '{prod}'"
        elif ymd and min(d for d, _ in rows) > ymd:
            r = "wesng DatePosted after the as-of date (filtered out of its as-of definitions)"
        elif any(kb in v for p, v in defs.superseded_values.items() if prod and prod in p):
            r = "named in some row's Supersedes for this product, which wesng counts as installed"
        else:
            r = "wesng treats it as installed or superseded (its own Supersedes closure)"
        row.reasons_kbgap_only[kb] = r


def summarize_reasons(reasons: dict[str, str]) -> str:
    c = Counter(generic(r) for r in reasons.values())
    return "; ".join(f"{n}× {r}" for r, n in c.most_common())


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def render(rows: list[Row], meta: dict) -> str:
    out = []
    out.append("# kbgap vs wesng on the wesng validation fixtures\n")
    out.append("<!-- generated by scripts/compare-wesng.py: do not edit by hand -->\n")
    out.append("Generated by `scripts/compare-wesng.py`. Regenerate from the workspace root with\n")
    out.append("```\ncargo build --release -p kbgap-cli\n"
               "python3 scripts/compare-wesng.py --install-wesng --import-archive --db target/compare.db\n```\n")
    out.append(f"- kbgap: `{meta['kbgap_version']}`, catalog: {meta['catalog']}\n"
               f"- wesng: `pip install wesng=={WESNG_VERSION}` (wes.py {WESNG_VERSION}), definitions "
               f"`{meta['definitions']}`\n"
               f"- inputs: {len(rows)} `*systeminfo*.txt` files of `../shared/fixtures/systeminfo/wesng-validation/`, "
               "each scanned alone by both tools (no qfe folded in, so both see the same evidence).\n"
               "- as-of: files named `_YYYYMMDD_` are evaluated as of that date: kbgap with `--as-of`, wesng with "
               "a copy of the definitions without rows posted later (approximate: both catalogs hold later "
               "revisions of the old documents).\n"
               "- KB sets: kbgap = the `value[].id` of `kbgap scan --json`; wesng = distinct numeric `BulletinKB` "
               "of its CSV (service-pack rows excluded; rows with an empty or non-numeric BulletinKB counted "
               "separately as non-KB rows).\n"
               "- Reasons are derived mechanically: kbgap's catalog (`kbgap catalog show --json`: supersedence, "
               "sub-type, products), `kbgap explain` for the rest, and the wesng definitions for kbgap-only KBs.\n")

    # Summary
    ok = [r for r in rows if "error" not in r.dev and r.wes.ok]
    agree = sum(1 for r in ok if r.kbgap == r.wesng)
    kbgap_only_files = sum(1 for r in ok if r.kbgap - r.wesng)
    wes_only_files = sum(1 for r in ok if r.wesng - r.kbgap)
    kg_total = sum(len(r.kbgap) for r in rows if "error" not in r.dev)
    wes_total = sum(len(r.wesng) for r in rows if r.wes.ok)
    out.append("\n## Summary\n\n| | count |\n|---|---:|\n")
    out.append(f"| files | {len(rows)} |\n")
    out.append(f"| kbgap errors | {sum(1 for r in rows if 'error' in r.dev)} |\n")
    out.append(f"| wesng failures (non-zero exit) | {sum(1 for r in rows if not r.wes.ok)} |\n")
    out.append(f"| files both tools answered | {len(ok)} |\n")
    out.append(f"| agreement (identical KB sets) | {agree} |\n")
    out.append(f"| both report nothing | {sum(1 for r in ok if not r.kbgap and not r.wesng)} |\n")
    out.append(f"| files with kbgap-only KBs | {kbgap_only_files} ({sum(len(r.kbgap - r.wesng) for r in ok)} KBs) |\n")
    out.append(f"| files with wesng-only KBs | {wes_only_files} ({sum(len(r.wesng - r.kbgap) for r in ok)} KBs) |\n")
    out.append(f"| KBs reported in total (kbgap / wesng) | {kg_total} / {wes_total} |\n")
    out.append(f"| wesng non-KB rows (empty or text BulletinKB) | "
               f"{sum(sum(r.wes.non_kb.values()) for r in rows)} rows in "
               f"{sum(1 for r in rows if r.wes.non_kb)} files |\n")

    # Disagreement classes
    out.append("\n## Disagreement classes\n\nEach KB reported by one tool only, with its mechanically derived reason "
               "(KB numbers folded into `KB…`).\n\n| side | reason | KBs | files |\n|---|---|---:|---:|\n")
    for side, attr in (("wesng only", "reasons_wes_only"), ("kbgap only", "reasons_kbgap_only")):
        kbs = Counter()
        files = defaultdict(set)
        for r in rows:
            for kb, reason in getattr(r, attr).items():
                g = generic(reason)
                kbs[g] += 1
                files[g].add(r.file)
        for g, n in kbs.most_common():
            out.append(f"| {side} | {md_escape(g)} | {n} | {len(files[g])} |\n")
    fails = [r for r in rows if not r.wes.ok]
    for r in fails:
        out.append(f"| wesng failure | exit {r.wes.exit}: {md_escape(r.wes.message)} | — | `{r.file}` |\n")
    stale = [r for r in rows if r.wes.ok and r.wes.product and "error" not in r.dev
             and not product_agrees(r)]
    if stale:
        out.append(f"| product mapping | wesng's product name differs from kbgap's resolved product "
                   f"(stale build table / naming) | — | {len(stale)} |\n")

    # Ground truth
    gt = [r for r in rows if r.wua is not None]
    if gt:
        out.append("\n## Ground truth: Windows Update Agent lists\n\n"
                   "Same-day pairs: the WUA list of missing updates captured with the systeminfo. A WUA KB "
                   "counts as a *security* KB when kbgap's catalog knows it (`kbgap catalog show`); the rest "
                   "(definitions, MSRT, microcode, .NET/Office not in CVRF, language packs, previews) is not "
                   "comparable. Security KBs for .NET Framework or Office count as misses for both tools: neither "
                   "sees those products in a systeminfo (kbgap says so; it needs an inventory). *hit* = the tool reports the KB or a KB that supersedes it (per kbgap's "
                   "catalog); *extra* = reported KBs that are neither in the WUA list nor superseding a WUA "
                   "KB. The optional-updates list of `srv_2012r2_u1` holds only KBs that must *not* be "
                   "reported.\n\n"
                   "| file | WUA KBs (distinct) | security (comparable) | not comparable | kbgap hit | kbgap extra | "
                   "wesng hit | wesng extra |\n|---|---:|---|---:|---|---|---|---|\n")
        tot = Counter()
        for r in gt:
            wua = r.wua
            sec = wua["security"]
            optional = wua["optional"]
            line = [f"`{r.file}`", str(len(wua["all"])), kb_list(sec, 8) if sec else "—",
                    str(len(wua["all"]) - len(sec))]
            for name, kbs, ok_ in (("kbgap", r.kbgap, "error" not in r.dev), ("wesng", r.wesng, r.wes.ok)):
                if not ok_:
                    line += ["failed", "failed"]
                    continue
                if optional:
                    bad = kbs & set(wua["all"])
                    line += ["n/a", f"{len(bad)} optional reported: {kb_list(bad, 5)}" if bad else "0 (none reported)"]
                    tot[name + "_optional_bad"] += len(bad)
                    continue
                hits = wua["hits"][name]
                extra = wua["extra"][name]
                tot[name + "_hit"] += len(hits)
                tot[name + "_extra"] += len(extra)
                tot[name + "_fn"] += len(sec) - len(hits)
                line += [f"{len(hits)}/{len(sec)}", f"{len(extra)}: {kb_list(extra, 6)}" if extra else "0"]
            if not optional:
                tot["sec"] += len(sec)
            out.append("| " + " | ".join(line) + " |\n")
        out.append(f"\nTotals over the required lists: {tot['sec']} comparable security KBs; "
                   f"kbgap hits {tot['kbgap_hit']}, misses {tot['kbgap_fn']}, extras {tot['kbgap_extra']}; "
                   f"wesng hits {tot['wesng_hit']}, misses {tot['wesng_fn']}, extras {tot['wesng_extra']}. "
                   f"Optional list: kbgap reported {tot['kbgap_optional_bad']}, wesng {tot['wesng_optional_bad']} "
                   "of its KBs.\n")

    # Per file
    out.append("\n## Per file\n\n| file | OS / build | as-of | kbgap missing | wesng missing | agreement | "
               "reasons for the disagreement |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        if "error" in r.dev:
            osb = "kbgap error"
            kcol = f"error: {md_escape(r.dev['error'][:120])}"
        else:
            osb = f"{r.dev.get('os')} {r.dev.get('osBuild') or '?'}"
            kcol = f"**{len(r.kbgap)}** {kb_list(r.kbgap, 6)}"
        if r.wes.ok:
            wcol = f"**{len(r.wesng)}** {kb_list(r.wesng, 6)}"
            if r.wes.non_kb:
                wcol += f" (+{sum(r.wes.non_kb.values())} non-KB rows)"
            wcol += f"<br>as *{md_escape(r.wes.product)}*"
        else:
            wcol = f"failed (exit {r.wes.exit}): {md_escape(r.wes.message)}"
        if "error" in r.dev or not r.wes.ok:
            agreement = "—"
        elif r.kbgap == r.wesng:
            agreement = "same"
        else:
            agreement = (f"{len(r.kbgap & r.wesng)} common, {len(r.kbgap - r.wesng)} kbgap-only, "
                         f"{len(r.wesng - r.kbgap)} wesng-only")
        reasons = []
        if not r.wes.ok:
            reasons.append(f"wesng failure: {r.wes.message}")
        if r.reasons_wes_only:
            reasons.append("wesng-only: " + summarize_reasons(r.reasons_wes_only))
        if r.reasons_kbgap_only:
            reasons.append("kbgap-only: " + summarize_reasons(r.reasons_kbgap_only))
        if r.wes.ok and "error" not in r.dev and not product_agrees(r):
            reasons.append(f"product: kbgap {'/'.join(short_products(r.dev)) or 'unmapped'} vs wesng '{r.wes.product}'")
        out.append(f"| `{r.file}` | {md_escape(osb)} | {r.as_of or '—'} | {kcol} | {wcol} | {agreement} | "
                   f"{md_escape('<br>'.join(reasons)) or '—'} |\n")

    # Details
    out.append("\n## Details per disagreement\n")
    for r in rows:
        if not (r.reasons_wes_only or r.reasons_kbgap_only):
            continue
        out.append(f"\n<details><summary><code>{r.file}</code>: {len(r.reasons_kbgap_only)} kbgap-only, "
                   f"{len(r.reasons_wes_only)} wesng-only</summary>\n\n")
        for kb, reason in r.reasons_kbgap_only.items():
            out.append(f"- kbgap only KB{kb}: {md_escape(reason)}\n")
        for kb, reason in r.reasons_wes_only.items():
            out.append(f"- wesng only KB{kb} ({r.wes.kbs.get(kb, '')}): {md_escape(reason)}\n")
        out.append("\n</details>\n")
    return "".join(out)


def short_products(dev: dict) -> list[str]:
    return [re.sub(r"\s*\([^()]*\)\s*$", "", p) for p in dev.get("products", [])][:1]


def product_agrees(r: Row) -> bool:
    """Whether wesng's product filter is one of kbgap's resolved product names."""
    names = [re.sub(r"\s*\([^()]*\)\s*$", "", p) for p in r.dev.get("products", [])]
    return not names or any(r.wes.product == n or r.wes.product in n for n in names)


def ground_truth(row: Row, path: Path, kg: Kbgap) -> None:
    stem = path.name
    folder = path.parent
    prefix = re.sub(r"_systeminfo\d*\.txt$", "", stem)
    updates = folder / f"{prefix}_updates.txt"
    optional = folder / f"{prefix}_updates_optional.txt"
    if updates.exists() and as_of_of(stem):
        wua_path, is_optional = updates, False
    elif optional.exists():
        wua_path, is_optional = optional, True
    else:
        return
    wua = parse_wua(wua_path)
    kg.prefetch(wua.keys())
    sec = {kb for kb in wua if kg.show(kb) is not None}
    info = {"all": wua, "security": sec, "optional": is_optional, "hits": {}, "extra": {}}
    for name, kbs in (("kbgap", row.kbgap), ("wesng", row.wesng)):
        cover = kg.closure_down(kbs)
        hits = {kb for kb in sec if kb in kbs or kb in cover}
        # extra: reported, not in the WUA list, and superseding nothing the WUA list names
        extra = set()
        for kb in kbs:
            if kb in wua:
                continue
            down = kg.closure_down([kb])
            if not (set(down) & set(wua)):
                extra.add(kb)
        info["hits"][name] = hits
        info["extra"][name] = extra
    row.wua = info


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------

def timed(cmd: list[str]) -> tuple[float, int, int]:
    """Runs under /usr/bin/time -f '%e %M': (seconds, peak RSS KiB, exit code)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-o", tf.name, "-f", "%e %M"] + cmd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parts = open(tf.name).read().split()
        return float(parts[-2]), int(parts[-1]), p.returncode


def bench(args, kg: Kbgap, files: list[Path], defs_zip: Path) -> None:
    if not Path("/usr/bin/time").exists():
        die("/usr/bin/time is missing: apt-get install time")
    runs = args.runs
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem_kb = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    load = open("/proc/loadavg").read().split()[:3]
    base = kg.base()
    print(f"bench: {len(files)} files, {runs} runs each", file=sys.stderr)

    # warm the page cache
    subprocess.run(base + ["catalog", "stats"], stdout=subprocess.DEVNULL)
    stats = [timed(base + ["catalog", "stats"]) for _ in range(runs)]
    load_s = statistics.median(s for s, _, _ in stats)
    load_rss = statistics.median(m for _, m, _ in stats)

    per_file = {}
    for f in files:
        a = as_of_of(f.name)
        cmd = base + ["scan", str(f), "--json"] + (["--as-of", a] if a else [])
        res = [timed(cmd) for _ in range(runs)]
        per_file[f.name] = (statistics.median(s for s, _, _ in res), statistics.median(m for _, m, _ in res))
        print(f"  kbgap {f.name}: {per_file[f.name]}", file=sys.stderr)
    all_runs = [timed(base + ["scan", "--json"] + [str(f) for f in files]) for _ in range(runs)]
    all_s = statistics.median(s for s, _, _ in all_runs)
    all_rss = statistics.median(m for _, m, _ in all_runs)

    wes_files = [f for f in files if any(k in f.name for k in args.wes_bench)]
    wes = {}
    for f in wes_files:
        res = [timed([str(Path(args.venv) / "bin" / "wes"), str(f), "--definitions", str(defs_zip),
                      "-o", os.devnull]) for _ in range(args.wes_runs)]
        wes[f.name] = (statistics.median(s for s, _, _ in res), statistics.median(m for _, m, _ in res))
        print(f"  wesng {f.name}: {wes[f.name]}", file=sys.stderr)

    proc_med = statistics.median(s for s, _ in per_file.values())
    proc_rss = statistics.median(m for _, m in per_file.values())
    engine_med = max(proc_med - load_s, 0.0)
    wes_med = statistics.median(s for s, _ in wes.values()) if wes else float("nan")
    wes_rss = statistics.median(m for _, m in wes.values()) if wes else 0
    kv = run([str(kg.binary), "--version"]).stdout.strip()
    st = run(base + ["catalog", "stats", "--json"]).stdout
    try:
        sj = json.loads(st)
        catalog = f"{sj.get('documents')} documents, {sj.get('kbs')} KBs, {sj.get('products')} products, {sj.get('cves')} CVEs"
    except json.JSONDecodeError:
        catalog = "?"
    today = time.strftime("%Y-%m-%d")
    L = []
    L.append(f"\n## Per-host scan: kbgap vs wesng ({today})\n\n")
    L.append("Generated by `python3 scripts/compare-wesng.py --bench --db DB` (figures from one run; "
             "the machine is shared, so treat them as indicative).\n\n")
    L.append(f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
             f"load average at start {' '.join(load)}\n")
    L.append(f"- kbgap: `{kv}` (release build), SQLite catalog with {catalog}, warm page cache\n")
    L.append(f"- wesng {WESNG_VERSION} (PyPI), definitions `{defs_zip.name}` (608,740 rows)\n")
    L.append(f"- measured with `/usr/bin/time -f '%e %M'` (wall seconds, peak RSS); medians of {runs} runs "
             f"(kbgap) and {args.wes_runs} runs (wesng)\n\n")
    L.append("| measurement | command | median wall | median peak RSS |\n|---|---|---:|---:|\n")
    L.append(f"| catalog load (≈ `catalog stats`) | `kbgap --db DB catalog stats` | {load_s:.2f} s | {load_rss / 1024:.0f} MiB |\n")
    L.append(f"| kbgap, one process per host ({len(files)} files, median of per-file medians) | "
             f"`kbgap --db DB scan FILE --json [--as-of D]` | {proc_med:.2f} s | {proc_rss / 1024:.0f} MiB |\n")
    L.append(f"| kbgap start-up beyond loading (engine indexes + one assessment: process − catalog load) | | "
             f"≈ {engine_med * 1000:.0f} ms | |\n")
    L.append(f"| kbgap, one process for all {len(files)} files | `kbgap --db DB scan F1 … F{len(files)} --json` | "
             f"{all_s:.2f} s total, {all_s / len(files) * 1000:.0f} ms/host, "
             f"{max(all_s - load_s, 0) / len(files) * 1000:.0f} ms/host after load | {all_rss / 1024:.0f} MiB |\n")
    L.append(f"| wesng per host ({len(wes)} files) | `wes FILE --definitions definitions.zip -o out.csv` | "
             f"{wes_med:.2f} s | {wes_rss / 1024:.0f} MiB |\n\n")
    L.append("Same files side by side (median wall seconds / peak RSS MiB):\n\n"
             "| file | kbgap process | wesng | ratio wesng/kbgap |\n|---|---:|---:|---:|\n")
    for name, (s, m) in wes.items():
        ks, km = per_file[name]
        L.append(f"| `{name}` | {ks:.2f} s / {km / 1024:.0f} MiB | {s:.2f} s / {m / 1024:.0f} MiB | "
                 f"{s / ks:.1f}× time, {m / km:.1f}× memory |\n")
    if wes:
        L.append(f"\nRatio of medians: wesng takes {wes_med / proc_med:.1f}× the time of a one-host kbgap process "
                 f"and {wes_rss / max(proc_rss, 1):.1f}× its memory; against kbgap's batch mode "
                 f"({all_s / len(files):.3f} s/host) the ratio is {wes_med / (all_s / len(files)):.0f}×. "
                 "A one-host kbgap process is almost all fixed start-up cost (catalog load from SQLite, then "
                 "building the engine's supersedence/series indexes); the assessment itself is the batch "
                 "figure after load. wesng reads its 135 MB CSV on every run, and on Windows Server its time "
                 "grows with the matching rows (its duplicate filter), hence the Server 2022 outlier.\n")
    L.append("\nPer-file kbgap medians (s / MiB): " + ", ".join(
        f"`{n}` {s:.2f}/{m / 1024:.0f}" for n, (s, m) in per_file.items()) + "\n")
    bm = REPO / "BENCHMARKS.md"
    if not bm.exists():
        bm.write_text("# Benchmarks\n")
    with bm.open("a") as f:
        f.write("".join(L))
    print("".join(L))


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

def main() -> None:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kbgap", default=str(target / "release" / "kbgap"), help="kbgap binary")
    ap.add_argument("--db", required=True, help="kbgap catalog database (SQLite file)")
    ap.add_argument("--fixtures", default=str(REPO.parent / "shared" / "fixtures"))
    ap.add_argument("--venv", default=str(REPO / "target" / "wesng-venv"), help="wesng virtualenv")
    ap.add_argument("--install-wesng", action="store_true", help=f"create the venv with wesng=={WESNG_VERSION}")
    ap.add_argument("--import-archive", action="store_true",
                    help="import the MSRC archive fixture into --db first (skipped documents are cheap)")
    ap.add_argument("--work", default=str(REPO / "target" / "wesng-compare"), help="scratch folder")
    ap.add_argument("--out", default=str(REPO / "docs" / "wesng-comparison.md"))
    ap.add_argument("--only", help="only files whose name contains this text")
    ap.add_argument("--jobs", type=int, default=2, help="parallel wesng runs (each ~600 MB)")
    ap.add_argument("--explain-budget", type=int, default=25,
                    help="max `kbgap explain` calls per file; the rest of that file is inferred")
    ap.add_argument("--reuse-wes", action="store_true",
                    help="reuse wes outputs stored in --work by an earlier run (same file and definitions)")
    ap.add_argument("--bench", action="store_true", help="measure per-host time/RSS, append to BENCHMARKS.md")
    ap.add_argument("--runs", type=int, default=5, help="kbgap runs per measurement (--bench)")
    ap.add_argument("--wes-runs", type=int, default=3, help="wesng runs per file (--bench)")
    ap.add_argument("--wes-bench", nargs="+",
                    default=["srv_2022_systeminfo", "10_22H2_x64", "11_24H2", "7_sp1_x64_enterprise_en-us_20190305",
                             "10_1809_x64_education_en-us_20190306"],
                    help="file-name fragments of the files wesng is timed on (--bench)")
    args = ap.parse_args()

    kbgap_bin = Path(args.kbgap)
    if not kbgap_bin.exists():
        die(f"{kbgap_bin} not found: run `cargo build --release -p kbgap-cli` or pass --kbgap")
    fixtures = Path(args.fixtures)
    folder = fixtures / "systeminfo" / "wesng-validation"
    defs_zip = fixtures / "wesng" / "definitions.zip"
    if not folder.is_dir() or not defs_zip.exists():
        die(f"fixtures not found under {fixtures}")
    venv = Path(args.venv)
    if args.install_wesng:
        install_wesng(venv)
    if not (venv / "bin" / "wes").exists():
        die(f"wesng is not installed in {venv}: pass --install-wesng")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    db = Path(args.db)
    if args.import_archive:
        arch = next((fixtures / "msrc-archive").glob("*.tar.zst"))
        unpack = work / "cvrf"
        if not any(unpack.glob("*.xml")):
            unpack.mkdir(exist_ok=True)
            zstd = subprocess.Popen(["zstd", "-dc", str(arch)], stdout=subprocess.PIPE)
            with tarfile.open(fileobj=zstd.stdout, mode="r|") as t:
                t.extractall(unpack, filter="data")
            zstd.wait()
        p = run([str(kbgap_bin), "--db", str(db), "catalog", "import", str(unpack)])
        if p.returncode != 0:
            die(f"import failed: {p.stderr.strip()[-500:]}")
    if not db.exists():
        die(f"{db} does not exist: pass --import-archive")

    kg = Kbgap(kbgap_bin, db, work / f"show-cache-{db.stat().st_mtime_ns}.json")
    files = sorted(f for f in folder.glob("*systeminfo*.txt") if not args.only or args.only in f.name)
    if args.bench:
        bench(args, kg, files, defs_zip)
        return

    print(f"compare-wesng: {len(files)} files; loading wesng definitions", file=sys.stderr)
    defs = Definitions(defs_zip)
    dates = {as_of_of(f.name) for f in files} - {None}
    zips = {d: defs.filtered_zip(d, work) for d in sorted(dates)}

    def one(f: Path) -> Row:
        a = as_of_of(f.name)
        dev = kg.scan(f, a)
        wes = run_wes(venv, f, zips[a] if a else defs_zip, work / (f.stem + ".wes.csv"), args.reuse_wes)
        kb = {digits(v["id"]) for v in dev.get("value", [])} if "error" not in dev else set()
        print(f"  {f.name}: kbgap {len(kb) if 'error' not in dev else 'error'}, wesng "
              f"{len(wes.kbs) if wes.ok else 'failed'}", file=sys.stderr)
        return Row(file=f.name, as_of=a, dev=dev, wes=wes, kbgap=kb, wesng=set(wes.kbs))

    with ThreadPoolExecutor(max(1, args.jobs)) as ex:
        rows = list(ex.map(one, files))

    for r, f in zip(rows, files):
        if "error" in r.dev:
            continue
        if r.wes.ok:
            classify(r, f, kg, defs, [args.explain_budget])
        ground_truth(r, f, kg)
        kg.save()
    kv = run([str(kbgap_bin), "--version"]).stdout.strip()
    try:
        sj = json.loads(run(kg.base() + ["catalog", "stats", "--json"]).stdout)
        catalog = (f"{sj.get('documents')} CVRF documents ({str(sj.get('first_release', ''))[:10]} .. "
                   f"{str(sj.get('last_release', ''))[:10]}), {sj.get('kbs')} KBs")
    except json.JSONDecodeError:
        catalog = "?"
    text = render(rows, {"kbgap_version": kv, "catalog": catalog, "definitions": defs_zip.name + " (20260628)"})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"compare-wesng: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""``srlib status``: is a committed result what the checked-out code would produce? (issue 13)

    srlib status                      # every committed profile (results/<profile>/manifest.json tracked by git)
    srlib status --profile small      # one profile; exit 1 when a table or figure is stale
    python -m srlib status --json     # machine-readable

For each notebook, the provenance its manifest entry recorded (:mod:`srlib.provenance`) is compared with what the
working tree would produce now; nothing is trained or evaluated. A table or figure is stale, with the reason, when

* a run its notebook used has another training-code fingerprint now ("training code of run X changed (files)"), or
  another folder key (its recipe's sizes, schedule or parent changed), or is no longer among the profile's runs
  (the runs are rebuilt from the recipes from the recorded :class:`srlib.runs.RunId` fields);
* the notebook's table code changed ("table code of notebook N changed (files)": its code cells or a table-code
  module it imports);
* the profile's sizes changed, or the data differ (the data root's sets hash to other files; checked when a data
  root is known: ``--data-root`` or ``$SRLIB_DATA``; otherwise a note says it was not checked);
* it reads results of a stale notebook, or files that changed since it ran (``06_tables`` reads every table);
* the file itself is not the one its notebook wrote, or no manifest entry with fingerprints records it ("made before
  provenance existed").

**Allowance.** A profile whose results are knowingly stale (``medium``: its runs take hours) carries
``results/<profile>/STALE.md`` saying why. Its stale files are still listed, the file's text is printed, and they do
not fail the check (exit 0) unless ``--strict``. ``make reproduce`` runs the stale notebooks
(:func:`notebooks_to_run`) whether or not the allowance exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from srlib import profiles
from srlib import provenance as P

ALLOWANCE = "STALE.md"
NO_PROVENANCE = "not recorded by a manifest with fingerprints (made before provenance existed)"
RESULT_FOLDERS = ("tables", "figures")
RESULT_FILES = ("claims.csv",)
"""Result files at the top of ``results/<profile>/`` (notebook 07's claims table, read by ``python -m
srlib.evidence``), checked like the files under :data:`RESULT_FOLDERS`."""


@dataclass(frozen=True, kw_only=True)
class ProfileStatus:
    """What ``srlib status`` found for one profile.

    Attributes:
        profile: profile name; results: its results folder; commit: the git commit the manifest recorded.
        notebooks: ``{notebook: reasons}`` of every stale notebook (also those never run for this profile).
        stale: ``{file relative to results: reasons}`` of every stale table/figure.
        never_run: notebooks of ``notebooks/`` with no entry in the manifest (no output is stale because of them).
        notes: what could not be checked.
        allowance: the text of ``results/<profile>/STALE.md``, or None.
    """

    profile: str
    results: Path
    commit: str | None
    notebooks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stale: dict[str, tuple[str, ...]] = field(default_factory=dict)
    never_run: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    allowance: str | None = None

    def failed(self, strict: bool = False) -> bool:
        """Whether this profile fails the check: stale files, not accepted by an allowance (always with ``strict``)."""
        return bool(self.stale) and (strict or self.allowance is None)

    def to_dict(self) -> dict:
        return {"profile": self.profile, "results": str(self.results), "commit": self.commit,
                "stale": {k: list(v) for k, v in self.stale.items()},
                "notebooks": {k: list(v) for k, v in self.notebooks.items()}, "never_run": list(self.never_run),
                "notes": list(self.notes), "allowance": self.allowance}


def _notebooks(root: Path, prof) -> dict[str, Path]:
    """The notebooks the profile runs (``Profile.notebooks``: a ladder profile runs notebook 07 only)."""
    from srlib.pipeline import notebook_paths

    return {p.stem: p for p in notebook_paths(root / "notebooks", prof.notebooks)}


def _result_files(results: Path) -> list[str]:
    return sorted([p.relative_to(results).as_posix() for d in RESULT_FOLDERS for p in (results / d).rglob("*")
                   if p.is_file()] + [f for f in RESULT_FILES if (results / f).is_file()])


def _changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _profile_changes(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new))
                for c in _profile_changes(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


class _Checker:
    """Caches what several notebooks of one profile share: the recipes' runs, fingerprints, the data summary."""

    def __init__(self, prof, results: Path, data_root, require_data: bool):
        from srlib import data as sdata

        self.prof, self.results, self.require_data = prof, results, require_data
        self.root = sdata.data_root(data_root)
        self._specs = None
        self._fingerprints: dict = {}
        self._data = None
        self.notes: list[str] = []

    def spec(self, run_id):
        if self._specs is None:
            from srlib import recipes
            from srlib.runs import ordered

            # with the parents and ladder trunks they start from (notebook 07 reads PCL-SR's bases)
            self._specs = {s.id: s for s in ordered(recipes.all_runs(self.prof))}
        return self._specs.get(run_id)

    def fingerprint(self, spec) -> str:
        key = tuple(sorted(spec.code))
        if key not in self._fingerprints:
            self._fingerprints[key] = spec.fingerprint()
        return self._fingerprints[key]

    def data(self) -> dict:
        if self._data is None:
            self._data = P.data_summary(self.prof, self.root)
        return self._data

    def run_reasons(self, prov: dict) -> list[str]:
        from srlib.runs import RunId

        by_reason: dict[str, list[str]] = {}
        for slug, rec in sorted(prov.get("runs", {}).items()):
            try:
                spec = self.spec(RunId(**rec["id"]))
            except TypeError:  # the RunId fields themselves changed
                spec = None
            if spec is None:
                by_reason.setdefault(f"no longer among the runs of profile {self.prof.name}", []).append(slug)
                continue
            if self.fingerprint(spec) != rec["fingerprint"]:
                modules = set(rec["code"]) | set(spec.code) | set(_training_modules())
                now = P.training_code(modules)
                files = [f for f in sorted(now) if prov.get("training_code", {}).get(f) != now[f]]
                files += [f"{m} (removed)" for m in sorted(modules) if P.module_file(m) is None]
                by_reason.setdefault(f"changed ({', '.join(files) or 'its fingerprint'})", []).append(slug)
                continue
            if spec.folder(".", rec["data"]).name != rec["folder"]:
                by_reason.setdefault("configuration changed (recipe, sizes, schedule or parent run: another run "
                                     "folder key)", []).append(slug)
        out = []
        for why, slugs in by_reason.items():
            runs = f"run{'s' if len(slugs) > 1 else ''} {', '.join(slugs)}"
            out.append(f"training code of {runs} {why}" if why.startswith("changed") else f"{runs}: {why}")
        return out

    def data_reasons(self, prov: dict) -> list[str]:
        recorded = prov.get("data") or {}
        rec_sets = recorded.get("sets") or {}
        if self.root is None:
            if not rec_sets:
                return []
            made = f"made with {', '.join(sorted(rec_sets))} from the data root {recorded.get('root')}"
            if self.require_data:
                return [f"data differs: {made}; no data root now ($SRLIB_DATA unset, no --data-root): the embedded "
                        f"images would be used"]
            note = f"data not checked: results {made}; set SRLIB_DATA (or --data-root) to check them"
            if note not in self.notes:
                self.notes.append(note)
            return []
        now = self.data()
        if now["sha256"] == recorded.get("sha256"):
            return []
        if not rec_sets:
            return [f"data differs: made with the embedded images; the data root {self.root} now provides "
                    f"{', '.join(sorted(now['sets']))}"]
        parts = []
        for name in sorted(set(rec_sets) | set(now["sets"])):
            old, new = rec_sets.get(name), now["sets"].get(name)
            if old == new:
                continue
            if new is None:
                parts.append(f"{name}: not in the data root {self.root} now")
            elif old is None:
                parts.append(f"{name}: in the data root now, not when it ran")
            else:
                parts.append(f"{name}: other files ({old['files']} then, {new['files']} now)")
        return [f"data differs ({'; '.join(parts)})"]

    def notebook_reasons(self, name: str, path: Path, prov: dict) -> list[str]:
        reasons = []
        now_profile = P.comparable_profile(self.prof.to_dict())
        if prov.get("profile") != now_profile:
            fields = _profile_changes(prov.get("profile"), now_profile)
            reasons.append(f"profile {self.prof.name} changed since it ran ({', '.join(fields)})")
        reasons += self.run_reasons(prov)
        recorded_code = prov.get("table_code", {})
        now_code = P.table_code(path)
        if now_code["sha256"] != recorded_code.get("sha256"):
            files = _changed(recorded_code.get("files", {}), now_code["files"])
            reasons.append(f"table code of notebook {name} changed ({', '.join(files)})")
        reasons += self.data_reasons(prov)
        if name in P.INPUTS:
            files = _changed(prov.get("inputs", {}), P.input_files(self.results, name))
            if files:
                reasons.append(f"{len(files)} of the files it reads changed since it ran ({', '.join(files)})")
        return reasons


def _training_modules() -> tuple[str, ...]:
    from srlib.runs import TRAINING_CODE

    return TRAINING_CODE


def check(profile: str, results: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
          data_root: str | os.PathLike | None = None, require_data: bool = False) -> ProfileStatus:
    """Compare ``results/<profile>/manifest.json`` (or ``results``) with what the checkout at ``root`` (default: the
    one containing the working directory) would produce; trains nothing.

    Args:
        require_data: without a data root, results made with standard sets count as stale (the pipeline: it would
            use the embedded images); otherwise (``srlib status``) the data are noted as not checked.
    """
    prof = profiles.resolve(profile)
    root = Path(root) if root is not None else (profiles.repo_root() or Path.cwd())
    results = Path(results) if results is not None else root / "results" / prof.name
    manifest_path = results / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entries = manifest.get("notebooks", {})
    notebooks = _notebooks(root, prof)
    checker = _Checker(prof, results, data_root, require_data)

    reasons: dict[str, list[str]] = {}
    never_run = []
    for name, path in notebooks.items():
        entry = entries.get(name)
        if entry is None:
            never_run.append(name)
            reasons[name] = [f"never run for profile {prof.name} (no entry in {manifest_path.name})"]
        elif "provenance" not in entry:
            reasons[name] = [NO_PROVENANCE]
        else:
            reasons[name] = checker.notebook_reasons(name, path, entry["provenance"])
    for name in entries:
        if name not in notebooks:
            reasons[name] = [f"notebook {name} no longer exists in notebooks/"]

    made_by = {out: name for name, e in entries.items() for out in e.get("outputs", [])}
    # a notebook reading results is stale when a notebook that writes them is (06_tables reads every table)
    changed = True
    while changed:
        changed = False
        for name, patterns in P.INPUTS.items():
            if name not in reasons or NO_PROVENANCE in reasons[name]:  # already stale for want of a record
                continue
            for producer in sorted({made_by[f] for f in made_by if any(Path(f).match(p) for p in patterns)}):
                why = f"reads the results of notebook {producer}, which is stale"
                if producer != name and reasons.get(producer) and why not in reasons[name]:
                    reasons[name].append(why)
                    changed = True

    stale: dict[str, tuple[str, ...]] = {}
    for rel in _result_files(results):
        name = made_by.get(rel)
        if name is None:
            stale[rel] = (NO_PROVENANCE if not any("provenance" in e for e in entries.values())
                          else f"not recorded by any notebook of {manifest_path}",)
            continue
        why = list(reasons.get(name, ()))
        written = entries[name].get("provenance", {}).get("outputs", {})
        if rel in written and P.file_sha256(results / rel) != written[rel]:
            why.append(f"not the file {name} wrote (changed after its run)")
        if why:
            stale[rel] = tuple(f"{name}: {w}" for w in why)
    for rel, name in made_by.items():
        if not (results / rel).exists() and (rel.split("/")[0] in RESULT_FOLDERS or rel in RESULT_FILES):
            stale[rel] = (f"{name}: missing (the notebook wrote it; the results folder lacks it)",)
    allowance = results / ALLOWANCE
    return ProfileStatus(
        profile=prof.name, results=results, commit=(manifest.get("git") or {}).get("commit"),
        notebooks={k: tuple(v) for k, v in reasons.items() if v}, stale=dict(sorted(stale.items())),
        never_run=tuple(never_run), notes=tuple(checker.notes),
        allowance=allowance.read_text().strip() if allowance.exists() else None)


def notebooks_to_run(profile: str, root: str | os.PathLike | None = None,
                     data_root: str | os.PathLike | None = None) -> dict[str, tuple[str, ...]]:
    """``{notebook: reasons}`` of the notebooks ``make reproduce`` must run for ``profile``: the stale ones and those
    never run (results made with standard sets are stale without a data root: the embedded images would be used)."""
    return check(profile, root=root, data_root=data_root, require_data=True).notebooks


def committed_profiles(root: Path) -> list[str]:
    """Profiles whose ``results/<profile>/manifest.json`` git tracks (outside git: every one that exists)."""
    out = subprocess.run(["git", "ls-files", "--", "results/*/manifest.json"], cwd=root, capture_output=True,
                         text=True, check=False)
    paths = out.stdout.split() if out.returncode == 0 else []
    if not paths:
        paths = [p.relative_to(root).as_posix() for p in sorted((root / "results").glob("*/manifest.json"))]
    return sorted(Path(p).parent.name for p in paths)


def report(status: ProfileStatus, strict: bool = False) -> str:
    """The human-readable report of one profile."""
    where = f"results/{status.profile}" if status.results.name == status.profile else str(status.results)
    commit = f" (manifest written at commit {status.commit[:10]})" if status.commit else ""
    lines = []
    if not status.stale:
        lines.append(f"{where}{commit}: current: no table or figure is stale")
    else:
        groups: dict[tuple[str, ...], list[str]] = {}  # files that are stale for the same reasons, listed together
        for rel, why in status.stale.items():
            groups.setdefault(why, []).append(rel)
        lines.append(f"{where}{commit}: STALE: {len(status.stale)} tables/figures")
        for why, files in groups.items():
            lines += [f"  - {w}" for w in why]
            lines += [f"      {rel}" for rel in files]
    if status.never_run:
        lines.append(f"  never run for this profile (no result is stale because of them; make reproduce would run "
                     f"them): {', '.join(status.never_run)}")
    lines += [f"  note: {n}" for n in status.notes]
    if status.allowance is not None:
        state = "ignored (--strict)" if strict else "accepted" if status.stale else "present, but nothing is stale: " \
                                                                                   "remove it"
        lines.append(f"  {ALLOWANCE} ({state}):")
        lines += [f"    {line}" for line in status.allowance.splitlines()]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", action="append", default=None,
                   help="profile to check (repeatable; default: every profile whose results/<profile>/manifest.json "
                        "is committed)")
    p.add_argument("--results", default=None, help="results folder to check instead of results/<profile> (one "
                                                   "--profile)")
    p.add_argument("--data-root", default=None, help="data root to compare the data with (default: $SRLIB_DATA)")
    p.add_argument("--strict", action="store_true", help=f"a results/<profile>/{ALLOWANCE} does not excuse stale files")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """``srlib status``: 0 when nothing is stale (or every stale profile carries an accepted allowance), else 1."""
    root = profiles.repo_root() or Path.cwd()
    names = args.profile or committed_profiles(root)
    if args.results and len(names) != 1:
        raise ValueError("--results needs exactly one --profile")
    if not names:
        raise FileNotFoundError(f"{root / 'results'}: no results/<profile>/manifest.json to check")
    statuses = [check(n, results=args.results, root=root, data_root=args.data_root) for n in names]
    if args.json:
        print(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        print("\n".join(report(s, args.strict) for s in statuses))
    failed = [s.profile for s in statuses if s.failed(args.strict)]
    if failed and not args.json:
        print(f"\nstale results: {', '.join(failed)}. Regenerate them (make reproduce PROFILE=<profile>; it reruns "
              f"the stale notebooks) and commit them, or mark them stale with the reason in "
              f"results/<profile>/{ALLOWANCE} (see README, 'Is a committed result current?')", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="srlib status", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

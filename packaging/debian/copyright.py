#!/usr/bin/env python3
"""Writes the package's copyright file (Debian's DEP-5 format) to stdout.

/usr/sbin/relive and /usr/bin/relivectl are statically linked with the Rust
crates that `cargo tree` lists as their normal (not build, dev or
proc-macro) dependencies. Each gets a paragraph: its copyright holders (the
"Copyright" lines of its own licence files, else its Cargo authors) and the
licence we distribute it under. Where a crate offers Apache-2.0, that is
the choice (Debian ships its text in /usr/share/common-licenses); any other
licence's text is copied from the crate's own licence file, and a crate
whose file cannot be found stops the build, naming it: a new dependency
never slips into the package unlisted.

Usage: copyright.py   (from the repository's root, after `cargo build`)
"""

import json
import re
import subprocess
import sys
from pathlib import Path

BINARY_PACKAGES = ["relive", "relive-ctl"]
OWN_PREFIX = "relive"

# Words in a licence file's name that say which licence it holds.
FILE_HINTS = {
    "MIT": ["mit"],
    "BSD-3-Clause": ["bsd", "license"],
    "BSL-1.0": ["boost", "bsl", "license"],
    "Unicode-3.0": ["unicode"],
    "Unlicense": ["unlicense"],
    "ISC": ["isc", "license"],
    "Zlib": ["zlib", "license"],
}


def run(args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def linked_crates():
    """(name, version) of every crate linked into the binaries."""
    args = ["cargo", "tree", "--quiet", "-e", "normal,no-proc-macro", "--prefix", "none",
            "--format", "{p}"]
    for p in BINARY_PACKAGES:
        args += ["-p", p]
    crates = set()
    for line in run(args).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            crates.add((parts[0], parts[1][1:]))
    return sorted(crates)


def chosen_licences(expression):
    """The licences we take from an SPDX expression: per AND-part, Apache-2.0
    if offered, else MIT if offered, else the first alternative."""
    chosen = []
    for part in re.split(r"\s+AND\s+", expression.strip()):
        alternatives = [a.strip(" ()") for a in re.split(r"\s+OR\s+|/", part)]
        for pick in ("Apache-2.0", "MIT"):
            if pick in alternatives:
                chosen.append(pick)
                break
        else:
            chosen.append(alternatives[0])
    return chosen


def licence_files(directory):
    return sorted(
        f for f in directory.iterdir()
        if f.is_file() and re.match(r"(?i)(un)?licen[cs]e|copying", f.name)
    )


def licence_text(crate, directory, licence):
    files = licence_files(directory)
    hints = FILE_HINTS.get(licence, [licence.lower()])
    for hint in hints:
        matches = [f for f in files if hint in f.name.lower()]
        if len(matches) == 1 or (matches and hint != "license"):
            return matches[0].read_text(errors="replace")
    if len(files) == 1:
        # A crate under one licence often names its file just LICENSE.
        return files[0].read_text(errors="replace")
    sys.exit(f"copyright.py: {crate}: no {licence} licence file in {directory} "
             f"(found: {', '.join(f.name for f in files) or 'none'})")


def holders(directory, authors, name):
    found = []
    for f in licence_files(directory):
        for line in f.read_text(errors="replace").splitlines():
            line = line.strip()
            # Case matters: Apache's text has "copyright license to ...".
            m = re.match(r"Copyright\s+(\([cC]\)\s*|©\s*)?(.+)", line)
            if m and not re.search(r"(?i)notice|yyyy|owner[]}]|holders?\b", line):
                holder = m.group(2).strip()
                if holder not in found:
                    found.append(holder)
    if not found:
        found = [re.sub(r"\s*<[^>]*>", "", a) for a in authors] or [f"the {name} developers"]
    return found


def indented(text):
    lines = text.strip("\n").splitlines()
    return "\n".join(" " + line.rstrip() if line.strip() else " ." for line in lines)


def main():
    metadata = json.loads(run(["cargo", "metadata", "--format-version", "1"]))
    packages = {(p["name"], p["version"]): p for p in metadata["packages"]}
    root = Path(metadata["workspace_root"])
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Upstream-Name: relive",
        "Source: https://example.invalid/relive",
        "Comment: /usr/sbin/relive and /usr/bin/relivectl are statically linked with",
        " the Rust crates below, built from their crates.io sources; vendor/NAME-VERSION",
        " names those sources. Where a crate offers a choice of licences, it is",
        " distributed here under the one named.",
        "",
        "Files: *",
        "Copyright: 2026 The relive developers",
        "License: MIT or Apache-2.0",
        "",
    ]
    for name, version in linked_crates():
        if name.startswith(OWN_PREFIX):
            continue
        package = packages[(name, version)]
        expression = package.get("license")
        if not expression:
            sys.exit(f"copyright.py: {name} {version} declares no licence")
        directory = Path(package["manifest_path"]).parent
        licences = chosen_licences(expression)
        out.append(f"Files: vendor/{name}-{version}/*")
        who = holders(directory, package.get("authors", []), name)
        out.append("Copyright: " + "\n ".join(who))
        out.append(f"License: {' and '.join(licences)}")
        texts = [licence_text(name, directory, lic) for lic in licences if lic != "Apache-2.0"]
        if texts:
            out.append(indented("\n\n".join(texts)))
        out.append(f"Comment: {name} {version} declares: {expression}")
        out.append("")
    out += [
        "License: MIT",
        indented((root / "LICENSE-MIT").read_text().split("\n", 2)[2]),
        "",
        "License: Apache-2.0",
        " Licensed under the Apache License, Version 2.0.",
        " .",
        " On Debian systems, the complete text of the Apache License, Version 2.0",
        " can be found in /usr/share/common-licenses/Apache-2.0.",
    ]
    print("\n".join(out))


if __name__ == "__main__":
    main()

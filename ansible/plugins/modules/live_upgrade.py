#!/usr/bin/python3
# Copyright: relive's authors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Live-upgrade a host's kernel with relive (`relivectl live-upgrade`)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: live_upgrade
short_description: Upgrade a host's kernel live with relive, without a reboot
description:
  - Runs C(relivectl live-upgrade) on a host whose init system is relive
    and follows it to its end. The preserved services are checkpointed,
    the host kexecs into the target kernel and they are restored there
    with the same PIDs and connections; the module returns relive's
    upgrade report.
  - Idempotent; when the host already runs the target kernel there is
    nothing to do and nothing changes.
  - The module's own process belongs to the ssh session that runs it,
    which relive carries across the kexec with C(ssh.service) (relive's
    default policy), so the connection stays open through the upgrade.
    Ansible's connection must not time out while the host is silent
    (about a minute at most); ansible's default ssh settings do not.
  - In check mode the module runs relive's preflight (C(--dry-run)) and
    returns the plan, changing nothing.
version_added: "1.0.0"
author: relive's authors
options:
  release:
    description:
      - The kernel release to run, as C(uname -r) prints it;
        C(/boot/vmlinuz-RELEASE) and C(/boot/initrd.img-RELEASE) are used.
      - C(latest) is the newest installed kernel, as Debian's
        C(linux-version) orders them.
      - Mutually exclusive with I(kernel).
    type: str
    default: latest
  kernel:
    description:
      - The kernel image to boot, when it is not in C(/boot) under
        Debian's names. Nothing to do when its file name is
        C(vmlinuz-RELEASE) and RELEASE runs already.
    type: path
  initrd:
    description: The initramfs of I(kernel).
    type: path
  reuse_cmdline:
    description:
      - Boot the new kernel with the running kernel's command line
        (which keeps relive's memory store reservation).
      - Ignored when I(append) is given.
    type: bool
    default: true
  append:
    description: The whole kernel command line to boot with instead.
    type: str
  store:
    description: Where the images travel (relive's C(upgrade.store) by default).
    type: str
    choices: [auto, memory, disk]
  single_phase:
    description: Dump everything in the stoppage, with no background pre-dumps.
    type: bool
    default: false
  max_stoppage:
    description:
      - Fail when any preserved unit was stopped longer than this many
        seconds (frozen until running again), although the upgrade
        completed.
    type: float
  relivectl:
    description: The relivectl command.
    type: path
    default: relivectl
notes:
  - The module fails when relive aborted or rolled back the upgrade, or
    when any unit's state was lost (started afresh instead of restored).
    The host keeps running in every case, on one kernel or the other.
seealso:
  - name: relivectl(1)
    description: The command line the module runs.
    link: https://github.com/relive/relive/blob/main/man/relivectl.1
"""

EXAMPLES = r"""
- name: Upgrade to the newest installed kernel
  relive.fleet.live_upgrade:
    max_stoppage: 60
  register: upgrade

- name: Upgrade to a given release, after apt installed it
  relive.fleet.live_upgrade:
    release: 6.12.117+deb12-amd64

- name: Show what would happen (the preflight's plan)
  relive.fleet.live_upgrade:
  check_mode: true
"""

RETURN = r"""
kernel_from:
  description: The kernel the host ran before.
  returned: always
  type: str
  sample: 6.1.0-47-amd64
kernel_to:
  description: The kernel the host runs now (in check mode, would run).
  returned: always
  type: str
  sample: 6.12.117+deb12-amd64
units:
  description: Each unit the upgrade touched, how and with what stoppage.
  returned: when an upgrade ran
  type: list
  elements: dict
  sample:
    - {name: redis-server.service, mode: preserve, outcome: restored, stoppage_seconds: 21.4}
lost:
  description: Units whose state was lost, with the reason.
  returned: when an upgrade ran
  type: list
  elements: dict
longest_stoppage_seconds:
  description: The longest stoppage of a preserved unit.
  returned: when an upgrade ran
  type: float
report:
  description: relive's whole upgrade report (C(relivectl --json upgrade-report)).
  returned: when an upgrade ran
  type: dict
plan:
  description: The preflight's plan (check mode).
  returned: in check mode, when there is something to do
  type: dict
ansible_facts:
  description: C(relive_plan) in check mode, C(relive_report) after an upgrade.
  returned: when there was something to do
  type: dict
"""

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule


def newest_installed(module, running):
    """The newest installed kernel release, as relivectl's --latest picks
    it: Debian's linux-version orders the installed ones and the running
    one (which may be newer than any installed)."""
    rc, listed, err = module.run_command(["linux-version", "list"])
    if rc != 0:
        module.fail_json(msg="linux-version list failed: " + err.strip())
    rc, ordered, err = module.run_command(
        ["linux-version", "sort", "--reverse"], data=listed + running + "\n"
    )
    if rc != 0 or not ordered.strip():
        module.fail_json(msg="linux-version sort failed: " + err.strip())
    return ordered.split()[0]


def target_release(module, params, running):
    """The release asked for, or None when a kernel file's name does not
    say it."""
    if params["kernel"]:
        match = re.match(r"vmlinuz-(.+)$", os.path.basename(params["kernel"]))
        return match.group(1) if match else None
    if params["release"] == "latest":
        return newest_installed(module, running)
    return params["release"]


def relivectl_args(params, release, check_mode):
    """`relivectl --json live-upgrade ...` for the module's parameters."""
    args = [params["relivectl"], "--json", "live-upgrade"]
    if params["kernel"]:
        args += ["--kernel", params["kernel"]]
        if params["initrd"]:
            args += ["--initrd", params["initrd"]]
    else:
        args += ["--release", release]
    if params["append"] is not None:
        args += ["--append", params["append"]]
    elif params["reuse_cmdline"]:
        args.append("--reuse-cmdline")
    if params["store"]:
        args += ["--store", params["store"]]
    if params["single_phase"]:
        args.append("--single-phase")
    if check_mode:
        args.append("--dry-run")
    return args


def last_json(stdout):
    """The last JSON object relivectl printed (progress lines come first)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def stoppage_seconds(unit):
    """Frozen until running again, as relive's report computes it."""
    frozen, running = unit.get("frozen_usec") or 0, unit.get("running_usec")
    if not frozen or running is None:
        return None
    return round(max(running - frozen, 0) / 1e6, 3)


LOST_PREFIX = "state lost: "
LOST_SUFFIX = "; started afresh"


def lost_reason(outcome):
    """Why a unit's state was lost, from its outcome text, or None."""
    if not (outcome or "").startswith(LOST_PREFIX):
        return None
    reason = outcome[len(LOST_PREFIX):]
    return reason[: -len(LOST_SUFFIX)] if reason.endswith(LOST_SUFFIX) else reason


def outcome_word(outcome):
    """A report outcome as one word: restored, restarted, rerun, lost."""
    if lost_reason(outcome) is not None:
        return "lost"
    return outcome or "unknown"


def summarize(report):
    """The report as the module returns it."""
    units = [
        {
            "name": u["name"],
            "mode": str(u.get("mode", "")).lower(),
            "outcome": outcome_word(u.get("outcome")),
            "stoppage_seconds": stoppage_seconds(u),
        }
        for u in report.get("units", [])
    ]
    lost = [
        {"unit": u["name"], "reason": lost_reason(u.get("outcome"))}
        for u in report.get("units", [])
        if lost_reason(u.get("outcome")) is not None
    ] + [{"unit": loss["unit"], "reason": loss["reason"]} for loss in report.get("losses", [])]
    return {
        "kernel_from": report.get("kernel_from", ""),
        "kernel_to": report.get("kernel_to", ""),
        "units": units,
        "lost": lost,
        "longest_stoppage_seconds": round(report.get("longest_stoppage_ms", 0.0) / 1e3, 3),
        "report": report,
    }


def verdict(summary, max_stoppage):
    """Why the upgrade counts as failed, or None."""
    report = summary["report"]
    if report.get("aborted"):
        return "relive aborted the upgrade: " + report["aborted"]
    if report.get("rolled_back"):
        return "relive rolled the upgrade back: " + report["rolled_back"]
    if summary["lost"]:
        return "state lost: " + "; ".join(
            "{unit}: {reason}".format(**loss) for loss in summary["lost"]
        )
    if max_stoppage is not None:
        over = [
            "{name} {stoppage_seconds} s".format(**u)
            for u in summary["units"]
            if u["stoppage_seconds"] is not None and u["stoppage_seconds"] > max_stoppage
        ]
        if over:
            return "stoppage above {0} s: {1}".format(max_stoppage, ", ".join(over))
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "release": {"type": "str", "default": "latest"},
            "kernel": {"type": "path"},
            "initrd": {"type": "path"},
            "reuse_cmdline": {"type": "bool", "default": True},
            "append": {"type": "str"},
            "store": {"type": "str", "choices": ["auto", "memory", "disk"]},
            "single_phase": {"type": "bool", "default": False},
            "max_stoppage": {"type": "float"},
            "relivectl": {"type": "path", "default": "relivectl"},
        },
        required_by={"initrd": "kernel"},
        supports_check_mode=True,
    )
    params = module.params
    running = os.uname().release
    wanted = target_release(module, params, running)
    if wanted == running:
        module.exit_json(changed=False, kernel_from=running, kernel_to=running)

    args = relivectl_args(params, wanted, module.check_mode)
    rc, stdout, stderr = module.run_command(args)
    answer = last_json(stdout)
    if answer is None:
        module.fail_json(
            msg="relivectl printed no result (exit {0}): {1}".format(rc, stderr.strip()),
            cmd=args,
            kernel_from=running,
            kernel_to=running,
        )
    if answer.get("nothing_to_do"):
        module.exit_json(changed=False, kernel_from=running, kernel_to=answer["release"])

    if module.check_mode:
        failed = [c for c in answer.get("checks", []) if not c.get("ok")]
        result = {
            "changed": True,
            "kernel_from": running,
            "kernel_to": wanted or params["kernel"],
            "plan": answer,
            "ansible_facts": {"relive_plan": answer},
        }
        if failed:
            module.fail_json(
                msg="relive's preflight refuses: "
                + "; ".join("{0}: {1}".format(c["name"], c["detail"]) for c in failed),
                **result
            )
        module.exit_json(**result)

    if "kernel_to" not in answer:
        module.fail_json(
            msg="relivectl did not follow the upgrade to its end (exit {0}): {1}".format(
                rc, stderr.strip()
            ),
            cmd=args,
            changed=True,
            kernel_from=running,
            kernel_to=os.uname().release,
        )
    summary = summarize(answer)
    summary["ansible_facts"] = {"relive_report": answer}
    why = verdict(summary, params["max_stoppage"])
    if why is not None:
        module.fail_json(msg=why, changed=True, **summary)
    module.exit_json(changed=True, **summary)


if __name__ == "__main__":
    main()

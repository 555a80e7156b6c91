"""Run the collection's playbooks from Python through ansible-runner: events, not stdout scraping.

Used by the demo, the benchmarks and the integration tests. Progress goes to stderr one line per task.
"""
import os
import shutil
import sys
import tempfile

import ansible_runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_INVENTORY = os.path.join(REPO, "inventories", "lab")


class PlaybookFailed(RuntimeError):
    def __init__(self, playbook, failures):
        self.failures = failures
        super().__init__("%s failed: %s" % (playbook, "; ".join(failures) or "see the output above"))


def run_playbook(playbook, extravars=None, inventory=LAB_INVENTORY, quiet=False, limit=None, check=False,
                 on_task=None):
    """Run playbooks/PLAYBOOK (``check``: in check mode); return {host: {task name: result}}.

    ``on_task(name)`` is called as each task starts (e.g. to take a screenshot when a migration begins).

    Raises PlaybookFailed naming each failed task and its message.
    """
    results, failures = {}, []

    def on_event(event):
        data = event.get("event_data", {})
        kind = event.get("event")
        if kind == "playbook_on_task_start":
            if not quiet:
                print("  [%s] %s" % (os.path.basename(playbook), data.get("task", "")), file=sys.stderr, flush=True)
            if on_task:
                on_task(data.get("task", ""))
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
            res = data.get("res", {})
            results.setdefault(data.get("host"), {})[data.get("task")] = res
            if kind != "runner_on_ok" and not data.get("ignore_errors"):
                failures.append("%s: %s: %s" % (data.get("host"), data.get("task"), res.get("msg", res)))
        return True

    private = tempfile.mkdtemp(prefix="arnab-runner-")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    try:
        run = ansible_runner.run(private_data_dir=private, project_dir=REPO,
                                 playbook=os.path.join(REPO, "playbooks", playbook), inventory=inventory,
                                 extravars=extravars or {}, envvars=env, limit=limit, quiet=True,
                                 cmdline="--check" if check else None, event_handler=on_event)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if run.rc != 0:
        raise PlaybookFailed(playbook, failures)
    return results

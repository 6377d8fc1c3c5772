"""Write each bash `run:` block of GitHub workflows to OUT_DIR/<name>.sh.

    python workflow_run_blocks.py OUT_DIR WORKFLOW.yml...

Used by lint-workflow.sh to shellcheck the steps. A block that contains a
`${{ ... }}` expression is refused: GitHub substitutes it into the script
text before bash runs (a template-injection risk), and the result is not shell
that can be checked; pass values through `env:` instead.
"""

import os
import re
import sys

from ruamel.yaml import YAML


def main():
    out_dir, paths = sys.argv[1], sys.argv[2:]
    problems = 0
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            workflow = YAML(typ="safe").load(fh)
        for job_id, job in (workflow.get("jobs") or {}).items():
            shell = ((job.get("defaults") or {}).get("run") or {}).get("shell", "bash")
            for n, step in enumerate(job.get("steps") or []):
                if "run" not in step or step.get("shell", shell) != "bash":
                    continue
                if "${{" in step["run"]:
                    print(f"{path}: job {job_id}, step {n}: expression in run:, use env:", file=sys.stderr)
                    problems += 1
                    continue
                name = re.sub(r"[^A-Za-z0-9]+", "-", f"{os.path.basename(path)}-{job_id}-{n}")
                with open(os.path.join(out_dir, name + ".sh"), "w", encoding="utf-8") as out:
                    # GitHub runs a bash step as `bash -e {0}`.
                    out.write("#!/usr/bin/env bash\nset -e\n" + step["run"])
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

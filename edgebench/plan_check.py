"""The controller's check of every device's run plan, for the validate play.

The validate play computes each device's plan (``edgebench_plan``) from the ``edgebench_*``
variables and hands them all to ``edgebench plan-check`` at once (one Python start for the whole
fleet). This answers with the runtime's vocabulary (which the play's friendlier assertions use, so
the words are defined once, in ``edgebench_runtime.vocabulary``) and, per device, every problem
:func:`edgebench_runtime.plan.check_plan` finds, each naming the variable that sets it.
"""

from __future__ import annotations

import re
from typing import Any

from edgebench_runtime import vocabulary
from edgebench_runtime.plan import REBOOT_POLICIES, check_plan

__all__ = ["PLAN_VARIABLES", "check_plans", "vocabulary_words"]

#: plan setting -> the variable(s) that set it (group_vars/all.yml documents each).
PLAN_VARIABLES = {
    "models": "edgebench_models / edgebench_profile",
    "providers": "edgebench_providers / edgebench_tensorrt_precisions",
    "modes": "edgebench_modes",
    "images.source": "edgebench_image_source",
    "images.count": "edgebench_image_count",
    "images.warmup": "edgebench_warmup_count",
    "predictions": "edgebench_accuracy_dataset",
    "validity.min_duration_s": "edgebench_min_duration_s",
    "validity.max_images": "edgebench_max_images",
    "threads": "edgebench_threads",
    "timeout_s": "edgebench_model_timeout_s",
    "cooldown": "edgebench_cooldown",
    "reboot_policy": "edgebench_reboot_policy",
    "tensorrt.workspace_mb": "edgebench_tensorrt_workspace_mb",
    "tensorrt.calibration_images": "edgebench_tensorrt_calibration_images",
    "paths.artifacts": "edgebench_work_dir",
    "paths.output": "edgebench_work_dir",
}


def vocabulary_words() -> dict[str, list[str]]:
    """The words the validate play checks variables against."""
    return {
        "provider_families": list(vocabulary.PROVIDER_FAMILIES),
        "precisions": list(vocabulary.PRECISIONS),
        "modes": list(vocabulary.MODES),
        "statuses": list(vocabulary.STATUSES),
        "reboot_policies": list(REBOOT_POLICIES),
    }


def _named(problem: str) -> str:
    setting = re.match(r"([a-z_.]+) ", problem)
    variable = PLAN_VARIABLES.get(setting.group(1)) if setting else None
    return f"{problem} (set by {variable})" if variable else problem


def check_plans(plans: Any) -> dict[str, Any]:
    """``{"vocabulary": ..., "problems": {host: [problem, ...]}}`` for ``{host: plan}``."""
    if not isinstance(plans, dict):
        raise ValueError("plan-check reads a JSON object {host: plan}")
    return {
        "vocabulary": vocabulary_words(),
        "problems": {host: [_named(p) for p in check_plan(plan)] for host, plan in sorted(plans.items())},
    }

"""Checks across the catalog that its schema cannot express: names that must exist, names
defined twice, off-hours schedules and freeze windows a running bot would later reject.

They run on the raw YAML data, so `forgebot config check` reports them together with every
schema error, in one run, each with the location (and so the line) it comes from. The
catalog model runs the same checks when it is built in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

Location = tuple[Any, ...]
Problem = tuple[Location, str]


def _items(data: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]


def _names(data: Mapping[str, Any], key: str, what: str, problems: list[Problem]) -> set[str]:
    seen: set[str] = set()
    for index, item in _items(data, key):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(((key, index, "name"), f"{what} “{name}” is defined twice"))
        seen.add(name)
    return seen


def reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    teams = _names(data, "teams", "team", problems)
    envs = _names(data, "environments", "environment", problems)
    _names(data, "services", "service", problems)
    _names(data, "templates", "template", problems)
    platform = data.get("platform_team")
    if isinstance(platform, str) and platform not in teams:
        problems.append((("platform_team",), f"platform_team “{platform}” is not one of the teams"))
    registries = [r for r in data.get("registries") or [] if isinstance(r, str)]
    for index, service in _items(data, "services"):
        name = service.get("name", f"#{index + 1}")
        team = service.get("team")
        if isinstance(team, str) and team not in teams:
            problems.append(
                (("services", index, "team"), f"service {name}: team “{team}” is not defined")
            )
        workloads = service.get("workloads")
        for env in workloads if isinstance(workloads, Mapping) else []:
            if env not in envs:
                problems.append(
                    (
                        ("services", index, "workloads", env),
                        f"service {name}: environment “{env}” is not defined",
                    )
                )
        slo_names: set[str] = set()
        for slo_index, slo in _items(service, "slos"):
            where = ("services", index, "slos", slo_index)
            slo_name = slo.get("name")
            if slo_name in slo_names:
                problems.append(
                    ((*where, "name"), f"service {name}: SLO “{slo_name}” is defined twice")
                )
            slo_names.add(str(slo_name))
            env = slo.get("environment")
            if envs and isinstance(env, str) and env not in envs:
                problems.append(
                    (
                        (*where, "environment"),
                        f"service {name}: SLO {slo_name}: environment “{env}” is not defined",
                    )
                )
        image = service.get("image")
        if (
            registries
            and isinstance(image, str)
            and not any(image.startswith(r.rstrip("/") + "/") for r in registries)
        ):
            problems.append(
                (
                    ("services", index, "image"),
                    f"service {name}: image {image} is not on an allowed registry",
                )
            )
    for index, budget in _items(data, "budgets"):
        team = budget.get("team")
        if isinstance(team, str) and team not in teams:
            problems.append((("budgets", index, "team"), f"budget: team “{team}” is not defined"))
    for index, template in _items(data, "templates"):
        schedule = template.get("offhours")
        if isinstance(schedule, str):
            problem = _schedule_problem(schedule)
            if problem:
                problems.append(
                    (
                        ("templates", index, "offhours"),
                        f"template {template.get('name')}: offhours: {problem}",
                    )
                )
    for index, env in _items(data, "environments"):
        for window_index, window in _items(env, "freeze_windows"):
            problem = _window_problem(window)
            if problem:
                problems.append(
                    (
                        ("environments", index, "freeze_windows", window_index, "end"),
                        f"environment {env.get('name')}: freeze window "
                        f"{window.get('name')}: {problem}",
                    )
                )
    return problems


def _schedule_problem(text: str) -> str | None:
    from core.schedule import ScheduleError, parse_schedule

    try:
        parse_schedule(text)
    except ScheduleError as exc:
        return str(exc)
    return None


def _window_problem(window: Mapping[str, Any]) -> str | None:
    from commands.deploy.freeze import _weekly_minute

    start, end = window.get("start"), window.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return None  # the schema reports missing fields
    weekly = _weekly_minute(start), _weekly_minute(end)
    if weekly[0] is not None and weekly[1] is not None:
        return "it starts and ends at the same time" if weekly[0] == weekly[1] else None
    if (weekly[0] is None) != (weekly[1] is None):
        return "start and end must both be weekday times (`Fri 16:00`) or both dates"
    try:
        begins, ends = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError:
        return (
            f"“{start}” to “{end}” is not a window: use ISO date-times (2026-12-23T00:00) "
            "or weekday times (Fri 16:00)"
        )
    if ends <= begins:
        return f"it ends ({end}) before it starts ({start})"
    return None

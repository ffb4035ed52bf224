"""Reading PromQL and Prometheus' text exposition well enough to tell which series a query names.

A query's metric names are its identifiers that are neither functions, aggregations, keywords, label
names (inside `{...}` or after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`), strings,
durations nor Grafana variables. An identifier followed by `(` that is no PromQL function is reported
as unknown rather than dropped, so a typo cannot pass as "not a metric".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTIONS = _words(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
    deg delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
    histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour
    idelta increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time
    max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time
    rad rate resets round scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc sqrt
    stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year start end
    """
)
AGGREGATIONS = _words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio"
)
KEYWORDS = _words("by without on ignoring group_left group_right bool and or unless offset atan2")
NUMBERS = frozenset({"inf", "nan"})
# Series Prometheus makes itself, not the service: a query may name only these beyond /metrics.
PROMETHEUS_MADE = frozenset({"up"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\w+)$", re.M)
_SAMPLE_NAME = re.compile(r"^([A-Za-z_:][\w:]*)[{ ]", re.M)


def substitute_grafana_variables(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with `$name`, `${name}`, `${name:format}` and `[[name]]` replaced from `values`."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no value for the Grafana variable {name!r} in {expr!r}")
        return values[name]

    return _GRAFANA_VARIABLE.sub(value, expr)


def grafana_variables(expr: str) -> set[str]:
    return {next(group for group in match.groups() if group) for match in _GRAFANA_VARIABLE.finditer(expr)}


def _without_labels_and_literals(expr: str) -> str:
    text = _GRAFANA_VARIABLE.sub("", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    return _GROUPING.sub(lambda match: match.group(0).replace(match.group(1), ""), text)


def identifiers(expr: str) -> list[tuple[str, bool]]:
    """(identifier, called) for each identifier outside labels, strings and ranges."""
    text = _without_labels_and_literals(expr)
    return [(match.group(1), match.group(2) is not None) for match in _IDENTIFIER.finditer(text)]


def metric_names(expr: str) -> set[str]:
    """The series names `expr` selects. Raises ValueError for a call of something that is no PromQL
    function or aggregation, or for a name selected by a `__name__` matcher (which this cannot check)."""
    if "__name__" in expr:
        raise ValueError(f"a series selected by __name__ cannot be checked, in {expr!r}")
    names = set()
    for name, called in identifiers(expr):
        lowered = name.lower()
        if lowered in KEYWORDS or lowered in NUMBERS or lowered in AGGREGATIONS:
            continue
        if called:
            if name not in FUNCTIONS:
                raise ValueError(f"{name}(...) is no PromQL function, in {expr!r}")
            continue
        names.add(name)
    return names


def balanced(expr: str) -> bool:
    """Whether the brackets of `expr` (outside strings) nest and close."""
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in _STRING.sub('""', expr):
        if char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return False
    return not stack


def exposed_series_names(exposition: str) -> set[str]:
    """The series names a scrape of `exposition` (text format 0.0.4) gives Prometheus, read from the
    `# TYPE` lines too, so that a labelled metric never observed yet still counts."""
    names = set(_SAMPLE_NAME.findall(exposition))
    for family, kind in _TYPE_LINE.findall(exposition):
        names |= series_of_family(family, kind)
    return names


def series_of_family(family: str, kind: str) -> set[str]:
    if kind == "counter":
        return {family if family.endswith("_total") else f"{family}_total"}
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    if kind == "summary":
        return {family, f"{family}_count", f"{family}_sum"}
    return {family}


def unknown_metric_names(expressions: Iterable[str], exposed: set[str]) -> dict[str, set[str]]:
    """Per expression, the names it selects that neither a scrape nor Prometheus itself provides."""
    allowed = exposed | PROMETHEUS_MADE
    unknown = {expr: metric_names(expr) - allowed for expr in expressions}
    return {expr: names for expr, names in unknown.items() if names}

"""Policy rules as kubectl shows them (`describe role`, `auth can-i --list`): each rule
broken down to one verb, group, resource and name, simple ones compacted back per resource
with their verbs gathered, sorted as Kubernetes' SortableRuleSlice, and a resource with its
group printed `deployments.apps/scale` (CombineResourceGroup)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Rule:
    """One rbac PolicyRule, mutable as CompactRules needs."""

    verbs: list[str] = field(default_factory=list)
    api_groups: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    resource_names: list[str] = field(default_factory=list)
    non_resource_urls: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, msg: object) -> Rule:
        """From a kemu.v1.PolicyRule."""
        return cls(*(list(getattr(msg, f)) for f in (
            "verbs", "api_groups", "resources", "resource_names", "non_resource_urls")))

    def go_string(self) -> str:
        """The generated PolicyRule.String() that Kubernetes sorts rules by."""
        return (f"&PolicyRule{{Verbs:{go_list(self.verbs)},APIGroups:{go_list(self.api_groups)},"
                f"Resources:{go_list(self.resources)},"
                f"ResourceNames:{go_list(self.resource_names)},"
                f"NonResourceURLs:{go_list(self.non_resource_urls)},}}")


def go_list(items: Iterable[str]) -> str:
    """A []string as Go's %v prints it: `[get list]`."""
    return "[" + " ".join(items) + "]"


def breakdown(rule: Rule) -> list[Rule]:
    """BreakdownRule: one rule per group, resource, verb (and resource name)."""
    names: list[list[str]] = [[n] for n in rule.resource_names] or [[]]
    out = [Rule([verb], [group], [resource], list(name))
           for group in rule.api_groups for resource in rule.resources for verb in rule.verbs
           for name in names]
    out += [Rule([verb], non_resource_urls=[url])
            for url in rule.non_resource_urls for verb in rule.verbs]
    return out


def compact(rules: Iterable[Rule]) -> list[Rule]:
    """CompactRules: rules that differ only by verb become one."""
    out: list[Rule] = []
    simple: dict[tuple[str, str, str | None], Rule] = {}
    for rule in rules:
        if (len(rule.resource_names) > 1 or rule.non_resource_urls or len(rule.api_groups) != 1
                or len(rule.resources) != 1):
            out.append(rule)
            continue
        key = (rule.api_groups[0], rule.resources[0],
               rule.resource_names[0] if rule.resource_names else None)
        if key in simple:
            simple[key].verbs += [v for v in rule.verbs if v not in simple[key].verbs]
        else:
            simple[key] = Rule(list(rule.verbs), list(rule.api_groups), list(rule.resources),
                               list(rule.resource_names))
    return out + list(simple.values())


def combine_resource_group(resources: list[str], groups: list[str]) -> str:
    """`deployments.apps/scale` for resource `deployments/scale` in group `apps`."""
    if not resources:
        return ""
    base, slash, sub = resources[0].partition("/")
    if groups and groups[0]:
        base += "." + groups[0]
    return base + (f"/{sub}" if slash else "")


def table_rows(rules: Iterable[Rule]) -> list[list[str]]:
    """Resources, Non-Resource URLs, Resource Names and Verbs cells, in kubectl's order."""
    broken = [part for rule in rules for part in breakdown(rule)]
    shown = sorted(compact(broken), key=Rule.go_string)
    return [[combine_resource_group(r.resources, r.api_groups), go_list(r.non_resource_urls),
             go_list(r.resource_names), go_list(r.verbs)] for r in shown]

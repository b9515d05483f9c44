"""The RBAC authorizer: Kubernetes' plugin/pkg/auth/authorizer/rbac, rule for rule.

A request is allowed when some rule of some role bound to the user covers it:

- every ClusterRoleBinding that names the user (as a User, one of its Groups, or the
  ServiceAccount `system:serviceaccount:NS:NAME`) grants its ClusterRole's rules everywhere;
- in the request's namespace, every RoleBinding that names the user grants its Role's
  rules, or its ClusterRole's rules, in that namespace only;
- a rule covers the request when its verbs, apiGroups and resources each hold the
  request's (or `*`), `pods/log` naming a subresource (`*/scale`: that subresource of any
  resource; plain `pods` never covers `pods/log`), and its resourceNames, when it has any,
  hold the request's object name (so they never cover list, watch or create);
- a ClusterRole with an aggregationRule also has the rules of every ClusterRole whose
  labels its selectors match (read when authorizing, not written back as Kubernetes'
  aggregation controller does).

Nothing denies: a request no rule covers gets no opinion, which the union turns into a
denial unless a later authorizer allows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kemu.api.labels import SelectorError, from_label_selector
from kemu.api.v1 import rbac_pb2
from kemu.services.apiserver.authorizer import Attributes, Decision, Verdict, View
from kemu.services.apiserver.identity import Identity

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def verb_matches(rule: rbac_pb2.PolicyRule, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.verbs)


def group_matches(rule: rbac_pb2.PolicyRule, group: str) -> bool:
    return any(g in ("*", group) for g in rule.api_groups)


def resource_matches(rule: rbac_pb2.PolicyRule, combined: str, subresource: str) -> bool:
    for r in rule.resources:
        if r in ("*", combined):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def name_matches(rule: rbac_pb2.PolicyRule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def rule_allows(attrs: Attributes, rule: rbac_pb2.PolicyRule) -> bool:
    """RuleAllows for a resource request."""
    return (verb_matches(rule, attrs.verb) and group_matches(rule, attrs.group)
            and resource_matches(rule, attrs.combined, attrs.subresource)
            and name_matches(rule, attrs.name))


def rules_allow(attrs: Attributes, rules: Iterable[rbac_pb2.PolicyRule]) -> bool:
    return any(rule_allows(attrs, r) for r in rules)


def applies_to(user: Identity, subject: rbac_pb2.Subject, namespace: str) -> bool:
    """appliesToUser: a RoleBinding's ServiceAccount without namespace is of its own."""
    if subject.kind == "User":
        return user.user == subject.name
    if subject.kind == "Group":
        return subject.name in user.groups
    if subject.kind == "ServiceAccount":
        sa_namespace = subject.namespace or namespace
        return user.user == f"{SERVICE_ACCOUNT_PREFIX}{sa_namespace}:{subject.name}"
    return False


def describe_subject(subject: rbac_pb2.Subject) -> str:
    name = f"{subject.namespace}/{subject.name}" if subject.kind == "ServiceAccount" and \
        subject.namespace else subject.name
    return f'{subject.kind} "{name}"'


@dataclass(frozen=True)
class Grant:
    """Rules from one binding to one subject, and how Kubernetes names that source."""

    source: str
    rules: tuple[rbac_pb2.PolicyRule, ...]


class RBACAuthorizer:
    """Allows what the roles bound to the user allow; otherwise no opinion."""

    def __init__(self, view: View) -> None:
        self.view = view

    def authorize(self, attrs: Attributes) -> Verdict:
        for grant in self.grants(attrs.user, attrs.namespace):
            if rules_allow(attrs, grant.rules):
                return Verdict(Decision.ALLOW, f"RBAC: allowed by {grant.source}")
        return Verdict(Decision.NO_OPINION)

    def rules_for(self, user: Identity, namespace: str) -> list[rbac_pb2.PolicyRule]:
        """Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview)."""
        return [rule for grant in self.grants(user, namespace) for rule in grant.rules]

    def grants(self, user: Identity, namespace: str) -> Iterator[Grant]:
        """VisitRulesFor: cluster role bindings first, then the namespace's role bindings."""
        for obj in self.view.objects("clusterrolebindings"):
            b = obj.cluster_role_binding
            subject = _first_applying(user, b.subjects, "")
            if subject is None:
                continue
            source = (f'ClusterRoleBinding "{b.metadata.name}" of {b.role_ref.kind} '
                      f'"{b.role_ref.name}" to {describe_subject(subject)}')
            yield Grant(source, self.role_rules(b.role_ref, ""))
        if not namespace:
            return
        for obj in self.view.objects("rolebindings"):
            rb = obj.role_binding
            if rb.metadata.namespace != namespace:
                continue
            subject = _first_applying(user, rb.subjects, namespace)
            if subject is None:
                continue
            source = (f'RoleBinding "{rb.metadata.name}/{namespace}" of {rb.role_ref.kind} '
                      f'"{rb.role_ref.name}" to {describe_subject(subject)}')
            yield Grant(source, self.role_rules(rb.role_ref, namespace))

    def role_rules(self, ref: rbac_pb2.RoleRef, namespace: str
                   ) -> tuple[rbac_pb2.PolicyRule, ...]:
        """The rules of the role a binding in `namespace` refers to; none when it is absent."""
        if ref.kind == "Role":
            found = self.view.get("roles", namespace, ref.name) if namespace else None
            return tuple(found.role.rules) if found is not None else ()
        if ref.kind == "ClusterRole":
            found = self.view.get("clusterroles", "", ref.name)
            return self._cluster_role_rules(found.cluster_role) if found is not None else ()
        return ()

    def _cluster_role_rules(self, role: rbac_pb2.ClusterRole) -> tuple[rbac_pb2.PolicyRule, ...]:
        rules = list(role.rules)
        if role.HasField("aggregation_rule"):
            selectors = []
            for sel in role.aggregation_rule.cluster_role_selectors:
                try:
                    selectors.append(from_label_selector(sel))
                except SelectorError:
                    continue
            for obj in self.view.objects("clusterroles"):
                other = obj.cluster_role
                if other.metadata.name == role.metadata.name:
                    continue
                if any(s.matches(other.metadata.labels) for s in selectors):
                    rules += [r for r in other.rules if r not in rules]
        return tuple(rules)


def _first_applying(user: Identity, subjects: Any, namespace: str) -> rbac_pb2.Subject | None:
    for subject in subjects:
        if applies_to(user, subject, namespace):
            return subject  # type: ignore[no-any-return]
    return None

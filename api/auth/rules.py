"""Who may call what: one rule per route (method + path template). A route without a rule is
refused for everyone (and fails the auth matrix test), so new routes are closed by default."""

from __future__ import annotations

from dataclasses import dataclass

from api.auth.principal import ALL_ROLES, Principal, Role

ADM, OPS, AUD, VIEW, INTEG, RUN = Role.ADMIN, Role.OPERATOR, Role.AUDITOR, Role.VIEWER, Role.INTEGRATOR, Role.RUNTIME


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role] = frozenset()  # admin may always call
    public: bool = False  # no token needed (health, token endpoint)
    job_param: str | None = None  # runtime principals only for this path parameter == their job
    scrape: bool = False  # only the metrics scrape credential (FLP_METRICS_TOKEN_FILE), never a JWT
    page: bool = False  # a dashboard page: without a session the browser is sent to the login form

    def allows(self, principal: Principal, path_params: dict[str, str]) -> bool:
        if self.public or Role.ADMIN in principal.roles:
            return True
        if principal.kind == "runtime":
            if Role.RUNTIME not in self.roles:
                return False
            return self.job_param is None or path_params.get(self.job_param) == principal.job_id
        return bool(self.roles & principal.roles)


def roles(*rs: Role) -> frozenset[Role]:
    return frozenset(rs)


PUBLIC = Rule(public=True)
BOARD = roles(OPS, AUD, VIEW)  # dashboards: job board, fleet, live streams

RULES: dict[tuple[str, str], Rule] = {
    # health, auth
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): Rule(scrape=True),
    ("POST", "/auth/token"): PUBLIC,
    ("GET", "/auth/me"): Rule(frozenset(ALL_ROLES)),
    ("POST", "/auth/api-keys"): Rule(roles(ADM)),
    ("GET", "/auth/api-keys"): Rule(roles(ADM)),
    ("DELETE", "/auth/api-keys/{client_id}"): Rule(roles(ADM)),
    ("POST", "/auth/runtime-tokens"): Rule(roles(OPS)),
    ("POST", "/users"): Rule(roles(ADM)),
    ("GET", "/users"): Rule(roles(ADM)),
    ("GET", "/users/{name}"): Rule(roles(ADM)),
    ("PATCH", "/users/{name}"): Rule(roles(ADM)),
    ("DELETE", "/users/{name}"): Rule(roles(ADM)),
    # jobs: commands
    ("POST", "/jobs"): Rule(roles(OPS)),
    ("POST", "/jobs/{job_id}/cancel"): Rule(roles(OPS)),
    ("POST", "/jobs/{job_id}/clients"): Rule(roles(OPS, RUN), job_param="job_id"),
    ("POST", "/jobs/{job_id}/rounds"): Rule(roles(RUN), job_param="job_id"),
    ("POST", "/jobs/{job_id}/rounds/started"): Rule(roles(RUN), job_param="job_id"),
    ("POST", "/jobs/{job_id}/start"): Rule(roles(RUN), job_param="job_id"),
    ("POST", "/jobs/{job_id}/complete"): Rule(roles(RUN), job_param="job_id"),
    ("POST", "/jobs/{job_id}/fail"): Rule(roles(RUN), job_param="job_id"),
    # jobs: queries
    ("GET", "/jobs"): Rule(BOARD),
    ("GET", "/jobs/{job_id}"): Rule(roles(OPS, AUD, VIEW, RUN), job_param="job_id"),
    ("GET", "/jobs/{job_id}/events"): Rule(roles(OPS, AUD)),
    ("GET", "/jobs/{job_id}/state"): Rule(roles(OPS, AUD)),
    ("GET", "/jobs/{job_id}/as-of"): Rule(roles(AUD)),
    ("GET", "/jobs/{job_id}/diff"): Rule(roles(AUD)),
    ("GET", "/jobs/{job_id}/audit"): Rule(roles(AUD)),
    ("GET", "/jobs/{job_id}/audit/verify"): Rule(roles(AUD)),
    ("GET", "/audit/verify"): Rule(roles(AUD)),
    ("GET", "/jobs/{job_id}/replay"): Rule(roles(AUD)),
    ("GET", "/jobs/{job_id}/contributions"): Rule(roles(OPS, AUD, VIEW)),
    ("GET", "/jobs/{job_id}/lineage"): Rule(roles(OPS, AUD)),
    ("GET", "/audit/public-key"): PUBLIC,  # a public key: anyone may check a bundle
    # fleet
    ("POST", "/clients"): Rule(roles(OPS)),
    ("POST", "/clients/{client_id}/leave"): Rule(roles(OPS)),
    ("GET", "/clients"): Rule(BOARD),
    ("GET", "/clients/{client_id}"): Rule(BOARD),
    ("POST", "/fleet/nodes"): Rule(roles(OPS)),
    ("DELETE", "/fleet/nodes/{name}"): Rule(roles(OPS)),
    ("GET", "/fleet/nodes"): Rule(roles(OPS)),
    ("GET", "/fleet/nodes/{name}"): Rule(roles(OPS)),
    # feed, live push
    ("GET", "/events"): Rule(roles(INTEG, AUD)),
    ("GET", "/live/jobs"): Rule(BOARD),
    ("GET", "/live/jobs/{job_id}"): Rule(BOARD),
    # model artifacts (the FL runtime uploads, people read)
    ("PUT", "/artifacts/{sha256}"): Rule(roles(RUN)),
    ("GET", "/artifacts/{sha256}"): Rule(roles(OPS, AUD, VIEW, RUN)),
    ("GET", "/jobs/{job_id}/model"): Rule(roles(OPS, AUD, VIEW, RUN), job_param="job_id"),
    # the dashboard (api/web): pages and their live fragments for people, forms for operators
    ("GET", "/"): PUBLIC,
    ("GET", "/ui/static/{name}"): PUBLIC,
    ("GET", "/ui/login"): PUBLIC,
    ("POST", "/ui/login"): PUBLIC,
    ("POST", "/ui/logout"): PUBLIC,
    ("GET", "/ui"): Rule(BOARD, page=True),
    ("GET", "/ui/fleet"): Rule(BOARD, page=True),
    ("GET", "/ui/jobs/{job_id}"): Rule(BOARD, page=True),
    ("GET", "/ui/jobs/{job_id}/audit"): Rule(roles(AUD), page=True),
    ("GET", "/ui/live/board"): Rule(BOARD),
    ("GET", "/ui/live/fleet"): Rule(BOARD),
    ("GET", "/ui/live/jobs/{job_id}"): Rule(BOARD),
    ("POST", "/ui/jobs"): Rule(roles(OPS)),
    ("POST", "/ui/jobs/{job_id}/cancel"): Rule(roles(OPS)),
}


def rule_for(method: str, path_template: str) -> Rule | None:
    return RULES.get((method.upper(), path_template))

"""The policy file: what it may say (`rules`, `when`), and how it is read and a mistake in it is
reported (`loading`). This module is the surface the rest of leaver imports."""

from app.policy.loading import PolicyError, load_policy, parse_policy
from app.policy.rules import Action, DefaultRule, Match, Policy, Rule
from app.policy.when import MAX_DELAY, When, parse_duration, parse_when

__all__ = [
    "MAX_DELAY",
    "Action",
    "DefaultRule",
    "Match",
    "Policy",
    "PolicyError",
    "Rule",
    "When",
    "load_policy",
    "parse_duration",
    "parse_policy",
    "parse_when",
]

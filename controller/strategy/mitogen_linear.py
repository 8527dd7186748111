"""Strategy `mitogen_linear`: a shim that hands over to Mitogen's own, from the installed package.

ansible.cfg points strategy_plugins here, so that ANSIBLE_STRATEGY=mitogen_linear alone turns Mitogen
on, wherever pip put it. Ansible loads this file only when that strategy is selected: otherwise the
default strategy runs as before, Mitogen installed or not. Mitogen is an option; no role depends on it.
"""
from ansible.errors import AnsibleError

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401 (re-exported)
except ImportError as error:
    raise AnsibleError(
        "strategy mitogen_linear needs Mitogen in the Python that runs Ansible: pip install mitogen "
        "(controller/requirements-*.txt pin it), or unset ANSIBLE_STRATEGY for the default strategy"
    ) from error

"""Lays the datadog_resources role's Python out for the unit tests as Ansible lays it out for a run.

The module imports `ansible.module_utils.datadog_resources.<name>`, and so do the package's own files:
AnsiballZ ships a module with the module_utils it imports under ansible/module_utils/ in its zip. Putting
the role's module_utils/ on sys.path would not do (that would import `datadog_resources`, not
`ansible.module_utils.datadog_resources`), so that folder is appended to the search path (`__path__`) of
the installed ansible.module_utils package instead, and the role's library/ goes on sys.path for its
module: the tests then import them with plain import statements, through Python's own import system.
"""
import sys
from pathlib import Path

import ansible.module_utils

sys.dont_write_bytecode = True  # keep __pycache__ out of the role's folders

ROLE = Path(__file__).resolve().parents[2] / "roles" / "datadog_resources"
ansible.module_utils.__path__.append(str(ROLE / "module_utils"))
sys.path.insert(0, str(ROLE / "library"))

# -*- coding: utf-8 -*-
"""The datadog_resources role's Python, imported by its module as ansible.module_utils.datadog_resources.

In dependency order: schema (bodies checked offline against datadog-api-client's models),
definitions (definitions turned into bodies with the role's mark), client (API calls, retried),
sync (Datadog brought to the definitions). AnsiballZ packs the package with the module.
"""

"""Creating projects: ``ledgerflow init`` as a library function."""

from ledgerflow.project.scaffold import DEFAULT_PLUGIN, Project, check_plugin_name, init_project

__all__ = ["DEFAULT_PLUGIN", "Project", "check_plugin_name", "init_project"]

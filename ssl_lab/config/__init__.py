from .config import CfgNode, ConfigError, get_cfg
from .imports import config_functions, import_project

__all__ = ["CfgNode", "ConfigError", "get_cfg", "config_functions", "import_project"]

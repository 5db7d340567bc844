from .config import CfgNode, ConfigError
from .configurable import configurable
from .defaults import get_cfg
from .imports import config_functions, import_project

__all__ = ["CfgNode", "ConfigError", "configurable", "get_cfg", "config_functions", "import_project"]

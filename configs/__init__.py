"""Training configs (ml_collections), one module each; see configs/default.py."""


def override(config, overrides: dict):
  """Sets {'section.field': value, ...} on `config`, as --config.KEY=value
  does on the command line; returns it."""
  for key, value in overrides.items():
    *sections, name = key.split(".")
    node = config
    for section in sections:
      node = node[section]
    node[name] = value
  return config

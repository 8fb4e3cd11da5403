"""The config drive written next to the image: user data, network data and meta data.

The reconciler reads the texts from the host's Secrets (spec.userData, networkData, metaData);
when metaData is not given, the engine generates the keys upstream's ironic provisioner puts
there: the node uuid, the host's namespace and name, and its hostname.
"""

import json

import yaml

from metalcubed.core import agent, ports
from metalcubed.core.api import meta


def default_meta_data(node_id: str, key: meta.ObjectKey) -> dict[str, str]:
    return {
        "uuid": node_id,
        "metal3-namespace": key.namespace,
        "metal3-name": key.name,
        "local-hostname": key.name,
        "local_hostname": key.name,
        "name": key.name,
    }


def build(config: ports.HostConfig, *, node_id: str, key: meta.ObjectKey) -> agent.ConfigDrive:
    """The config drive for `config`. A metaData Secret holding a YAML (or JSON) mapping
    replaces the defaults (as upstream's does); any other text is kept under `metaData`."""
    meta_data = default_meta_data(node_id, key)
    if config.meta_data:
        try:
            given = yaml.safe_load(config.meta_data)
        except yaml.YAMLError:
            given = None
        if isinstance(given, dict):
            meta_data = {str(k): v if isinstance(v, str) else json.dumps(v)
                         for k, v in given.items()}
        else:
            meta_data = {**meta_data, "metaData": config.meta_data}
    return agent.ConfigDrive(
        user_data=config.user_data or "",
        network_data=config.network_data or "",
        meta_data=meta_data,
    )

"""The HostFirmwareSettings and HostFirmwareComponents controllers over the memory store and
the fixture provisioner, with upstream's TestStoreHostFirmwareSettings cases
(internal/controller/metal3.io/hostfirmwaresettings_test.go, baremetal-operator 02aa5059e)."""

import base64

import pytest

from metalcubed.core import clock, outcome
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import firmwareschema, meta
from metalcubed.core.api import hostfirmwarecomponents as hfc_api
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.memory_store import MemoryStore
from metalcubed.core.provisioning import fixture
from metalcubed.core.reconcilers import hostfirmwarecomponents, hostfirmwaresettings
from metalcubed.core.testing import fakes

from ..api.test_firmware_api import SCHEMA

NS = "myhostnamespace"  # upstream: myHostNamespace (our store checks RFC 1123 names)
KEY = meta.ObjectKey(NS, "myhostname")
SCHEMA_NAME = "schema-4bcc035f"
# upstream getCurrentSettings(): what the provisioner reports
CURRENT = {"L2Cache": "10x512 KB", "NetworkBootRetryCount": "20", "ProcVirtualization": "Disabled",
           "SecureBoot": "Enabled", "AssetTag": "X45672917"}


class World:
    def __init__(self, state: bmh.ProvisioningState = bmh.ProvisioningState.AVAILABLE) -> None:
        self.clock = clock.ManualClock()
        self.store = MemoryStore(clock=self.clock)
        self.backend = fixture.FixtureBackend()
        self.events = fakes.RecordingEventRecorder()
        node = self.backend.node(KEY)
        node.firmware_settings = dict(CURRENT)
        node.firmware_schema = dict(SCHEMA)
        self.store.create(meta.Secret(
            metadata=meta.ObjectMeta(name="bmc", namespace=NS),
            data={k: base64.b64encode(v.encode()).decode()
                  for k, v in (("username", "admin"), ("password", "pw"))}))
        host = self.store.create(bmh.BareMetalHost(
            metadata=meta.ObjectMeta(name=KEY.name, namespace=NS),
            spec=bmh.BareMetalHostSpec.model_validate(
                {"online": True, "bmc": {"address": "redfish://192.0.2.1/redfish/v1/Systems/1",
                                         "credentialsName": "bmc"}})))
        status = host.status.model_copy(update={"provisioning": host.status.provisioning
                                                .model_copy(update={"state": state})})
        self.store.update_status(host.model_copy(update={"status": status}))
        common = {"store": self.store, "provisioner_factory": self.backend,
                  "clock": self.clock, "events": self.events}
        self.hfs = hostfirmwaresettings.HostFirmwareSettingsReconciler(**common)  # type: ignore[arg-type]
        self.hfc = hostfirmwarecomponents.HostFirmwareComponentsReconciler(**common)  # type: ignore[arg-type]

    def settings(self, spec: dict[str, int | str], status: dict[str, str] | None = None,
                 ) -> None:
        obj = self.store.create(hfs_api.HostFirmwareSettings(
            metadata=meta.ObjectMeta(name=KEY.name, namespace=NS),
            spec=hfs_api.HostFirmwareSettingsSpec(settings=spec)))
        if status is not None:
            self.store.update_status(obj.model_copy(update={"status": hfs_api.
                                     HostFirmwareSettingsStatus(settings=status)}))

    def schema(self) -> None:
        """upstream getSchema(): the schema already there, owned by another host's HFS (which
        exists here: the store's garbage collector drops dangling owner references)."""
        other = self.store.create(hfs_api.HostFirmwareSettings(
            metadata=meta.ObjectMeta(name="dummyhfs", namespace=NS),
            spec=hfs_api.HostFirmwareSettingsSpec(settings={})))
        self.store.create(firmwareschema.FirmwareSchema(
            metadata=meta.ObjectMeta(name=SCHEMA_NAME, namespace=NS, owner_references=(
                meta.OwnerReference(api_version="metal3.io/v1alpha1",
                                    kind="HostFirmwareSettings", name="dummyhfs",
                                    uid=other.metadata.uid or ""),)),
            spec=firmwareschema.FirmwareSchemaSpec(schema=SCHEMA)))


def _conditions(obj: hfs_api.HostFirmwareSettings | hfc_api.HostFirmwareComponents,
                ) -> list[tuple[str, str, str, str]]:
    return [(c.type, c.status, c.reason, c.message) for c in obj.status.conditions]


VALID_NO_CHANGE = [("Valid", "True", "Success", ""), ("ChangeDetected", "False", "Success", "")]


@pytest.mark.parametrize(("spec", "status", "schema_exists", "conditions"), [
    pytest.param({}, None, False, VALID_NO_CHANGE, id="initial hfs resource with no schema"),
    pytest.param({}, None, True, VALID_NO_CHANGE, id="initial hfs resource with existing schema"),
    pytest.param({"NetworkBootRetryCount": "10", "ProcVirtualization": "Enabled",
                  "AssetTag": "Z98765432"},
                 {"AssetTag": "Z98765432", "L2Cache": "10x256 KB",
                  "NetworkBootRetryCount": "10", "ProcVirtualization": "Enabled"}, True,
                 [("ChangeDetected", "True", "Success", ""), ("Valid", "True", "Success", "")],
                 id="updated settings"),
    pytest.param({"NetworkBootRetryCount": 1000, "ProcVirtualization": "Enabled"},
                 {"L2Cache": "10x256 KB", "NetworkBootRetryCount": "10",
                  "ProcVirtualization": "Enabled"}, True,
                 [("ChangeDetected", "True", "Success", ""),
                  ("Valid", "False", "ConfigurationError", "Invalid BIOS setting")],
                 id="spec updated with invalid setting"),
    pytest.param({"NetworkBootRetryCount": 20, "ProcVirtualization": "Disabled"},
                 {"L2Cache": "10x256 KB", "NetworkBootRetryCount": "10",
                  "ProcVirtualization": "Enabled"}, True, VALID_NO_CHANGE,
                 id="spec has same settings as current"),
])
def test_upstream_store_host_firmware_settings(
    spec: dict[str, int | str], status: dict[str, str] | None, schema_exists: bool,
    conditions: list[tuple[str, str, str, str]],
) -> None:
    w = World()
    w.settings(spec, status)
    if schema_exists:
        w.schema()
    result = w.hfs.reconcile(KEY)
    hfs = w.store.get(hfs_api.HostFirmwareSettings, KEY)
    assert hfs.status.settings == CURRENT
    assert hfs.status.schema_ == hfs_api.SchemaReference(namespace=NS, name=SCHEMA_NAME)
    assert _conditions(hfs) == conditions
    assert all(c.observed_generation == hfs.metadata.generation for c in hfs.status.conditions)
    assert hfs.status.last_updated == w.clock.now()
    schema = w.store.get(firmwareschema.FirmwareSchema, meta.ObjectKey(NS, SCHEMA_NAME))
    owners = ["dummyhfs", KEY.name] if schema_exists else [KEY.name]
    assert [o.name for o in schema.metadata.owner_references] == owners
    assert schema.spec.schema_ == SCHEMA
    change = any(c[:2] == ("ChangeDetected", "True") for c in conditions)
    assert result == outcome.Outcome.after(60.0 if change else 300.0)


def test_invalid_settings_are_events_on_the_object_and_a_second_pass_writes_nothing() -> None:
    w = World()
    w.settings({"NetworkBootRetryCount": 1000, "SysPassword": "x"})
    w.hfs.reconcile(KEY)
    assert [(e.kind, e.reason, e.message) for e in w.events.events] == [
        ("HostFirmwareSettings", "ValidationFailed",
         "Invalid BIOS setting: Setting NetworkBootRetryCount is invalid, integer 1000 is above "
         "maximum value 20"),
        ("HostFirmwareSettings", "ValidationFailed", "Invalid BIOS setting: cannot set Password "
         "field"),
    ]
    before = w.store.get(hfs_api.HostFirmwareSettings, KEY).metadata.resource_version
    w.clock.advance(60)
    w.hfs.reconcile(KEY)
    assert w.store.get(hfs_api.HostFirmwareSettings, KEY).metadata.resource_version == before


def test_a_spec_edit_while_a_change_is_pending_moves_observed_generation() -> None:
    """Upstream writes conditions only when one flips; then the host's controller would wait for
    this generation forever. Ours writes the new observedGeneration."""
    w = World()
    w.settings({"ProcVirtualization": "Enabled"})
    w.hfs.reconcile(KEY)
    hfs = w.store.get(hfs_api.HostFirmwareSettings, KEY)
    w.store.update(hfs.model_copy(update={"spec": hfs_api.HostFirmwareSettingsSpec(
        settings={"ProcVirtualization": "Enabled", "NetworkBootRetryCount": 5})}))
    w.hfs.reconcile(KEY)
    hfs = w.store.get(hfs_api.HostFirmwareSettings, KEY)
    assert {c.observed_generation for c in hfs.status.conditions} == {hfs.metadata.generation}


@pytest.mark.parametrize("state", [bmh.ProvisioningState.NONE,
                                   bmh.ProvisioningState.UNMANAGED])
def test_hosts_not_enrolled_are_skipped(state: bmh.ProvisioningState) -> None:
    w = World(state)
    w.settings({})
    assert w.hfs.reconcile(KEY) == outcome.Outcome.after(600.0)
    assert w.store.get(hfs_api.HostFirmwareSettings, KEY).status.conditions == ()


def test_no_host_no_work_and_a_missing_hfs_is_waited_for() -> None:
    w = World()
    assert w.hfs.reconcile(meta.ObjectKey(NS, "other")) == outcome.Outcome.done()
    assert w.hfs.reconcile(KEY) == outcome.Outcome.after(30.0)


def test_a_provisioner_error_is_retried_later() -> None:
    w = World()
    w.settings({})
    w.backend.fail("get_firmware_settings", message="BMC unreachable")
    assert w.hfs.reconcile(KEY) == outcome.Outcome.after(30.0)


# --- HostFirmwareComponents (upstream hostfirmwarecomponents_test.go) ----------------------------


COMPONENTS = (
    hfc_api.FirmwareComponentStatus(component="bmc", initial_version="1.0.0",
                                    current_version="1.0.0"),
    hfc_api.FirmwareComponentStatus(component="bios", initial_version="1.0.1",
                                    current_version="1.0.1"),
)


def _components(w: World, updates: tuple[tuple[str, str], ...]) -> None:
    w.backend.node(KEY).firmware_components = COMPONENTS
    w.store.create(hfc_api.HostFirmwareComponents(
        metadata=meta.ObjectMeta(name=KEY.name, namespace=NS),
        spec=hfc_api.HostFirmwareComponentsSpec(updates=tuple(
            hfc_api.FirmwareUpdate(component=c, url=u) for c, u in updates))))


@pytest.mark.parametrize("updates", [
    pytest.param((("bmc", "https://myurls/newbmcfirmware"),), id="update bmc"),
    pytest.param((("bios", "https://myurls/newbiosfirmware"),), id="update bios"),
    pytest.param((("bmc", "https://myurls/newbmcfirmware"),
                  ("bios", "https://myurls/newbiosfirmware")), id="update all"),
])
def test_upstream_update_host_firmware_components(updates: tuple[tuple[str, str], ...]) -> None:
    w = World()
    _components(w, updates)
    assert w.hfc.reconcile(KEY) == outcome.Outcome.after(60.0)
    hfc = w.store.get(hfc_api.HostFirmwareComponents, KEY)
    assert hfc.status.components == COMPONENTS
    assert _conditions(hfc) == [("ChangeDetected", "True", "OK", ""), ("Valid", "True", "OK", "")]


def test_an_invalid_component_is_not_valid_with_upstreams_message() -> None:
    w = World()
    _components(w, (("nic", "https://x/y"),))
    w.hfc.reconcile(KEY)
    hfc = w.store.get(hfc_api.HostFirmwareComponents, KEY)
    message = ("Invalid Firmware Components: component nic is invalid, only 'bmc', 'bios', or "
               "names starting with 'nic:' are allowed as update names")
    assert _conditions(hfc) == [("ChangeDetected", "True", "OK", ""),
                                ("Valid", "False", "InvalidComponent", message)]
    assert [(e.reason, e.message) for e in w.events.events] == [("ValidationFailed", message)]


def test_no_updates_is_valid_without_change() -> None:
    w = World()
    _components(w, ())
    assert w.hfc.reconcile(KEY) == outcome.Outcome.after(300.0)
    hfc = w.store.get(hfc_api.HostFirmwareComponents, KEY)
    assert _conditions(hfc) == [("Valid", "True", "OK", ""), ("ChangeDetected", "False", "OK", "")]


def test_steady_passes_leave_the_shared_schema_alone() -> None:
    """Once status names the schema, a pass does not read or write the FirmwareSchema (shared
    by every host of a model: upstream gets and updates it on every pass)."""
    w = World()
    w.settings({})
    w.hfs.reconcile(KEY)
    touched: list[str] = []
    real_get, real_update = w.store.get, w.store.update

    def get(kind, key):  # type: ignore[no-untyped-def]
        if kind is firmwareschema.FirmwareSchema:
            touched.append("get")
        return real_get(kind, key)

    def update(obj):  # type: ignore[no-untyped-def]
        if isinstance(obj, firmwareschema.FirmwareSchema):
            touched.append("update")
        return real_update(obj)

    w.store.get, w.store.update = get, update  # type: ignore[method-assign]
    w.clock.advance(300)
    w.hfs.reconcile(KEY)
    assert touched == []
    assert w.store.get(hfs_api.HostFirmwareSettings, KEY).status.schema_ == \
        hfs_api.SchemaReference(namespace=NS, name=SCHEMA_NAME)

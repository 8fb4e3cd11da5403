"""The HostFirmwareSettings controller: upstream's hostfirmwaresettings_controller.go.

A pass over the HostFirmwareSettings named like a host: skip the host when it is not enrolled,
detached or paused; read the BIOS settings and registry through the host's provisioner; make
sure the FirmwareSchema for that registry exists (shared by name, `schema-<hash>`, with this
object as one of its owners); write status (settings without passwords, the schema reference)
and the conditions the host's controller acts on:

- no spec setting differs from status: Valid True, ChangeDetected False (reason Success);
- some differ: ChangeDetected True, and Valid True, or False with reason ConfigurationError and
  message "Invalid BIOS setting" when a spec setting is not in status, names a password or
  breaks the schema (each such error also an Event `ValidationFailed` on the object, once
  status has settings).

Status is written only when it changed (the conditions, the settings or the schema reference:
unlike upstream, also when only a condition's observedGeneration moved, see `_update_status`),
then requeued after 1 minute while a change is pending, else 5 minutes.
"""

import random
from collections.abc import Mapping

from metalcubed.core import outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, firmwareschema, meta
from metalcubed.core.api import hostfirmwaresettings as hfs_api
from metalcubed.core.reconcilers import hostsub

HFS = hfs_api.HostFirmwareSettings
_NAMES_MAX = 4096
"""Registries whose schema name is remembered (one per host at most); starts over past this."""
_SETTLED_MAX = 100_000
"""Objects whose settled status is remembered (one per host); starts over past this."""


class HostFirmwareSettingsReconciler:
    def __init__(
        self,
        *,
        store: ports.Store,
        provisioner_factory: ports.ProvisionerFactory,
        clock: ports.Clock,
        events: ports.EventRecorder,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._factory = provisioner_factory
        self._clock = clock
        self._events = events
        self._names: dict[
            int, tuple[Mapping[str, firmwareschema.SettingSchema], str,
                       dict[str, firmwareschema.SettingSchema]]] = {}
        self._settled: dict[meta.ObjectKey, tuple[str, Mapping[str, str],
                                                  hfs_api.SchemaReference]] = {}
        """Per object, the resourceVersion its last pass left, with the settings and schema
        reference it computed status from: a periodic pass that reads the same finds nothing
        to compute (most passes: upstream resyncs every 5 minutes)."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            return outcome.Outcome.done()
        if hostsub.skip(host):
            return outcome.Outcome.after(hostsub.UNMANAGED_RETRY_DELAY_S)
        try:
            hfs = self._store.get(HFS, key)
        except outcome.NotFound:
            return outcome.Outcome.after(hostsub.RESOURCE_NOT_AVAILABLE_RETRY_DELAY_S)
        events: list[tuple[str, str]] = []
        try:
            prov = self._factory.new_provisioner(
                hostsub.host_data(self._store, host), lambda r, m: events.append((r, m)))
            read = prov.get_firmware_settings(include_schema=True)
        except outcome.MetalcubedError:
            # upstream: the provisioner is not ready or returned an error; try again later.
            return outcome.Outcome.after(hostsub.PROVISIONER_RETRY_DELAY_S)
        name, entries = self._named(read.schema or {})
        ref = hfs_api.SchemaReference(namespace=hfs.metadata.namespace, name=name)
        if hfs.status.schema_ != ref:
            # A new or changed registry: find or create its FirmwareSchema, owned by this
            # object. Once status names it, later passes skip this (upstream gets and updates
            # the schema on every pass).
            self._schema(host, hfs, name, entries)
        hfs = self._update_status(hfs, read.settings, ref, entries, events)
        for reason, message in events:
            self._events.record(hfs, type=ports.EventType.NORMAL, reason=reason, message=message)
        if hostsub.is_true(hfs.status.conditions, hfs_api.CHANGE_DETECTED):
            return outcome.Outcome.after(hostsub.REQUEUE_DELAY_CHANGE_DETECTED_S)
        return outcome.Outcome.after(hostsub.REQUEUE_DELAY_S)

    def _named(
        self, registry: Mapping[str, firmwareschema.SettingSchema],
    ) -> tuple[str, dict[str, firmwareschema.SettingSchema]]:
        """The registry's schema name and stored entries (password attributes never stored),
        computed once per registry object (the engine hands the same one out for an hour)."""
        known = self._names.get(id(registry))
        if known is not None and known[0] is registry:
            return known[1], known[2]
        entries = {
            name: entry for name, entry in registry.items()
            if "Password" not in name
            and entry.attribute_type != firmwareschema.AttributeType.PASSWORD
        }
        name = firmwareschema.schema_name(registry)
        if len(self._names) >= _NAMES_MAX:
            self._names.clear()
        self._names[id(registry)] = (registry, name, entries)
        return name, entries

    def _schema(
        self, host: bmh.BareMetalHost, hfs: HFS, name: str,
        entries: dict[str, firmwareschema.SettingSchema],
    ) -> firmwareschema.FirmwareSchema:
        """upstream getOrCreateFirmwareSchema: the schema of this registry in the namespace,
        with `hfs` among its owners."""
        key = meta.ObjectKey(hfs.metadata.namespace, name)
        try:
            found = self._store.get(firmwareschema.FirmwareSchema, key)
        except outcome.NotFound:
            vendor = host.status.hardware.system_vendor if host.status.hardware else None
            created = firmwareschema.FirmwareSchema(
                metadata=meta.ObjectMeta(
                    name=name, namespace=hfs.metadata.namespace,
                    owner_references=(hostsub.owner_reference(hfs),)),
                spec=firmwareschema.FirmwareSchemaSpec(
                    hardware_vendor=vendor.manufacturer if vendor else "",
                    hardware_model=vendor.product_name if vendor else "",
                    schema=entries),
            )
            try:
                return self._store.create(created)
            except outcome.Conflict:  # another host of the same model created it meanwhile
                return self._store.get(firmwareschema.FirmwareSchema, key)
        if hostsub.with_owner(found.metadata.owner_references, hfs) is None:
            return found
        # Every HostFirmwareSettings of this model adds itself, with no resourceVersion: the
        # hosts do not fail each other (upstream's checked Update made 1,000 hosts a storm of
        # 409s and retries; on the API server the store batches the owners, see store.md).
        return self._store.add_owner(found, hostsub.owner_reference(hfs))

    def _update_status(
        self, hfs: HFS, settings: Mapping[str, str], ref: hfs_api.SchemaReference,
        schema: Mapping[str, firmwareschema.SettingSchema], events: list[tuple[str, str]],
    ) -> HFS:
        """upstream updateStatus: the new status; written when it changed. `schema` is the
        registry the FirmwareSchema named by `ref` holds."""
        key = hfs.key
        settled = self._settled.get(key)
        if settled is not None and settled[0] == hfs.metadata.resource_version \
                and settled[2] == ref and settled[1] == settings:
            return hfs  # the same object, read the same: the same status, no Event
        hfs = self._computed_status(hfs, settings, ref, schema, events)
        version = hfs.metadata.resource_version
        if not events and version:  # a pass with Events is computed every time
            if len(self._settled) >= _SETTLED_MAX:
                self._settled.clear()
            self._settled[key] = (version, settings, ref)
        return hfs

    def _computed_status(
        self, hfs: HFS, settings: Mapping[str, str], ref: hfs_api.SchemaReference,
        schema: Mapping[str, firmwareschema.SettingSchema], events: list[tuple[str, str]],
    ) -> HFS:
        current = {k: v for k, v in settings.items() if "Password" not in k}
        old = hfs.status
        dirty = old.schema_ != ref or old.settings != current
        generation = hfs.metadata.generation
        now = self._clock.now()
        conditions = old.conditions
        spec = hfs.spec.settings
        mismatch = hfs_api.changed_settings(spec, current)

        def set_(type_: str, status: bool, reason: str, message: str = "") -> bool:
            nonlocal conditions
            conditions, changed = hostsub.set_condition(
                conditions, type=type_, status=status, reason=reason, message=message,
                generation=generation, now=now)
            return changed

        if mismatch:
            dirty = set_(hfs_api.CHANGE_DETECTED, True, hfs_api.REASON_SUCCESS) or dirty
            errors = hfs_api.invalid_settings(spec, current, schema)
            if not errors:
                dirty = set_(hfs_api.VALID, True, hfs_api.REASON_SUCCESS) or dirty
            else:
                if current:
                    for error in errors:
                        events.append(("ValidationFailed",
                                       f"Invalid BIOS setting: {error.message}"))
                dirty = set_(hfs_api.VALID, False, hfs_api.REASON_CONFIGURATION_ERROR,
                             "Invalid BIOS setting") or dirty
        else:
            dirty = set_(hfs_api.VALID, True, hfs_api.REASON_SUCCESS) or dirty
            dirty = set_(hfs_api.CHANGE_DETECTED, False, hfs_api.REASON_SUCCESS) or dirty
        # Upstream writes only when a condition's status flips; a spec edited while a change
        # is already pending would then keep the old observedGeneration, and the host's
        # controller would wait for it forever. Any change of the conditions is written.
        dirty = dirty or conditions != old.conditions
        if not dirty:
            return hfs
        status = change.replace(old, {"schema_": ref, "settings": current,
                                      "conditions": conditions, "last_updated": now})
        return self._store.update_status(change.replace(hfs, {"status": status}))

"""The BareMetalHost controller: upstream BMO's reconcile pipeline (bmo.md 2.2) over the ports.

A pass reads like a checklist: load the host (gone: done); honour `paused`; restore status from
the status annotation and take hardware details from HardwareData or the annotation; add the
finalizer; load the BMC credentials; build the provisioner; route a deletion; handle detach;
make sure the host is registered; run the handler of the current state; recompute conditions;
write what changed. It decides from what it observes now, never from event history, and a
second pass over an unchanged world writes nothing new.
"""

import functools
import json
import random
from collections.abc import Callable
from typing import NamedTuple

import pydantic

from metalcubed.core import annotations, bmcaddress, conditions, fsm, outcome, ports
from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import change, meta
from metalcubed.core.api import hardwaredata as hwd
from metalcubed.core.reconcilers import host_states
from metalcubed.core.reconcilers.hostwork import (
    ET,
    HOST_ERROR_RETRY_DELAY_S,
    OS,
    PROVISIONER_NOT_READY_RETRY_DELAY_S,
    UNMANAGED_RETRY_DELAY_S,
    HostReconcilerConfig,
    HostWork,
    S,
)

E = fsm.Event

_NO_REGISTRATION = frozenset({S.NONE, S.UNMANAGED, S.MATCH_PROFILE, S.DELETING})
_DETACHABLE = frozenset({S.PROVISIONED, S.EXTERNALLY_PROVISIONED, S.READY, S.AVAILABLE})
_DELETE_ROUTE: dict[S, fsm.Event | None] = {
    S.NONE: E.DELETE,
    S.UNMANAGED: E.DELETE,
    S.REGISTERING: E.DELETE,
    S.PROVISIONING: E.DEPROVISION,
    S.PROVISIONED: E.DEPROVISION,
    S.DEPROVISIONING: None,
    S.POWERING_OFF_BEFORE_DELETE: None,
    S.DELETING: None,
}


_SteadyConditions = tuple[
    tuple[meta.Condition, ...],
    tuple[bmh.ProvisioningState, bmh.OperationalStatus, bmh.ErrorType, bool, str, int | None],
]
"""A conditions tuple and the inputs it was computed from (a fixed point of
`conditions.apply(tuple, conditions.desired(inputs))`)."""
_STEADY_MAX = 1 << 20
"""Bound on the per-host caches (deleted hosts are dropped when seen gone; this is a backstop)."""

class _Creds(NamedTuple):
    """A host's usable BMC credentials: the values, the Secret they came from, and the
    CredentialsStatus naming that Secret (one object per Secret version, so a status that
    holds it is recognised by identity)."""

    credentials: ports.Credentials
    secret: meta.Secret
    status: bmh.CredentialsStatus


_NO_CREDENTIALS = ports.Credentials(username="", password="")

_parse_address = functools.lru_cache(maxsize=65536)(bmcaddress.parse)
"""Parsing is pure and hosts keep their address: parse each once (failures are not cached)."""


def _same_credentials(status: bmh.CredentialsStatus, secret: meta.Secret) -> bool:
    ref = status.credentials
    return (
        ref is not None
        and ref.name == secret.metadata.name
        and ref.namespace == secret.metadata.namespace
        and status.credentials_version == (secret.metadata.resource_version or "")
    )


def _credentials_status(secret: meta.Secret) -> bmh.CredentialsStatus:
    return bmh.CredentialsStatus(
        credentials=meta.SecretReference(
            name=secret.metadata.name, namespace=secret.metadata.namespace
        ),
        credentials_version=secret.metadata.resource_version or "",
    )


class CredentialsProblem(outcome.MetalcubedError):
    """The host's BMC details or credentials Secret cannot be used (a registration error)."""

    def __init__(self, message: str, *, retry_after_s: float | None, metric: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.metric = metric


class BareMetalHostReconciler:
    """Reconciles BareMetalHosts (one instance per controller; safe to call from one worker
    per key at a time, which the workqueue guarantees)."""

    def __init__(
        self,
        *,
        store: ports.Store,
        provisioner_factory: ports.ProvisionerFactory,
        clock: ports.Clock,
        events: ports.EventRecorder,
        rng: random.Random,
        config: HostReconcilerConfig | None = None,
        metrics: ports.Metrics | None = None,
    ) -> None:
        self._store = store
        self._factory = provisioner_factory
        self._clock = clock
        self._events = events
        self._rng = rng
        self._metrics = metrics or ports.NullMetrics()
        self._deps = host_states.Deps(store=store, config=config or HostReconcilerConfig())
        self._steady_conditions: dict[meta.ObjectKey, _SteadyConditions] = {}
        """Per host, a conditions tuple known to be what its inputs call for (see
        `_update_conditions`); dropped when the host is gone."""
        self._secret_credentials: dict[meta.ObjectKey, tuple[meta.Secret, _Creds]] = {}
        """Per Secret, the credentials last read from it: the same Secret object (an unchanged
        Secret, as the cache hands it out) is not decoded and checked again."""
        self._management: dict[
            meta.ObjectKey,
            tuple[
                bmh.BareMetalHostSpec,
                bmh.ProvisionStatus,
                bmh.OperationalStatus,
                bool,
                ports.ManagementAccessData,
            ],
        ] = {}
        """Per host, the registration data of the last pass and its inputs (`_access_data`)."""
        self._host_data: dict[
            meta.ObjectKey, tuple[bmh.BareMetalHostSpec, ports.Credentials, str, ports.HostData]
        ] = {}
        """Per host, the provisioner's HostData and what it was built from (the same spec and
        credentials objects, the same provisioner id): rebuilt only when one of them changes."""

    def reconcile(self, key: meta.ObjectKey) -> outcome.Outcome:
        try:
            host = self._store.get(bmh.BareMetalHost, key)
        except outcome.NotFound:
            self._steady_conditions.pop(key, None)
            self._host_data.pop(key, None)
            self._management.pop(key, None)
            return outcome.Outcome.done()
        if bmh.PAUSED_ANNOTATION in host.metadata.annotations:
            return outcome.Outcome.done()
        self._metrics.inc("metal3_reconcile_total")
        work = HostWork(
            host=host,
            status=host.status,
            annotations=dict(host.metadata.annotations),
            finalizers=list(host.metadata.finalizers),
            now=self._clock.now(),
            rng=self._rng,
            metrics=self._metrics,
        )
        try:
            result = self._run(work, key)
            self._persist(work)
        except outcome.MetalcubedError:
            self._metrics.inc("metal3_reconcile_error_total")
            raise
        finally:
            self._publish(work)
        return result if result is not None else outcome.Outcome.done()

    # --- the pipeline -----------------------------------------------------------------------

    def _run(self, w: HostWork, key: meta.ObjectKey) -> outcome.Outcome | None:
        early = self._restore_status(w) or self._hardware_details(w) or self._finalizer(w)
        if early is not None:
            return early
        if w.deleting and bmh.FINALIZER not in w.finalizers:
            return outcome.Outcome.done()
        creds: _Creds | None = None
        if w.state not in (S.NONE, S.UNMANAGED):
            try:
                creds = self._credentials(w.host)
            except CredentialsProblem as problem:
                if not w.deleting:
                    return self._credentials_failure(w, key, problem)
                creds = None
        if creds is not None or w.deleting:
            built = self._provisioner(w, key, creds)
            if built is not None:
                return built
        result = (
            (host_states.check_delayed_host(w) if w.prov is not None else None)
            or self._initiate_delete(w, registered=creds is not None)
            or self._detached(w)
            or self._ensure_registered(w, key, creds)
            or host_states.HANDLERS[w.state](w, self._deps)
        )
        self._update_conditions(w, key)
        return result

    def _restore_status(self, w: HostWork) -> outcome.Outcome | None:
        raw = w.annotations.get(bmh.STATUS_ANNOTATION)
        if raw is None:
            return None
        if w.status.last_updated is not None:
            del w.annotations[bmh.STATUS_ANNOTATION]  # stale: status is already there
            return None
        try:
            restored = bmh.BareMetalHostStatus.model_validate(json.loads(raw))
        except (ValueError, pydantic.ValidationError) as exc:
            w.event("InvalidAnnotationValue", f"status annotation ignored: {exc}", warning=True)
            return None
        hardware = w.status.hardware or restored.hardware
        w.status = restored
        w.set(hardware=hardware)
        del w.annotations[bmh.STATUS_ANNOTATION]
        return outcome.Outcome.after(0)

    def _hardware_details(self, w: HostWork) -> outcome.Outcome | None:
        if w.deleting:
            self._release_hardware_data(w.host)
        disabled = w.host.inspection_disabled()
        raw = w.annotations.pop(bmh.HARDWARE_DETAILS_ANNOTATION, None)
        if w.status.hardware is not None and not disabled:
            if raw is not None:
                w.event("RemoveAnnotation", "hardware details annotation ignored: host inspected")
            return None
        try:
            data = self._store.get(hwd.HardwareData, w.host.key)
        except outcome.NotFound:
            data = None
        if data is not None and data.spec.hardware is not None:
            if data.spec.hardware != w.status.hardware:
                w.set(hardware=data.spec.hardware)
        elif raw is not None:
            try:
                details = hwd.HardwareDetails.model_validate(json.loads(raw))
            except (ValueError, pydantic.ValidationError) as exc:
                w.event("InvalidAnnotationValue", f"hardwaredetails ignored: {exc}", warning=True)
                return None
            w.set(hardware=details)
            w.event("UpdateHardwareDetails", "Set hardware details from annotation")
        return None

    def _release_hardware_data(self, host: bmh.BareMetalHost) -> None:
        try:
            data = self._store.get(hwd.HardwareData, host.key)
        except outcome.NotFound:
            return
        if host_states.HARDWARE_DATA_FINALIZER in data.metadata.finalizers:
            kept = tuple(
                f for f in data.metadata.finalizers if f != host_states.HARDWARE_DATA_FINALIZER
            )
            self._store.update(data.with_meta(finalizers=kept))

    def _finalizer(self, w: HostWork) -> outcome.Outcome | None:
        if w.deleting or bmh.FINALIZER in w.finalizers:
            return None
        w.finalizers.append(bmh.FINALIZER)
        return outcome.Outcome.after(0)

    def _credentials(self, host: bmh.BareMetalHost) -> _Creds:
        """Upstream buildAndValidateBMCCredentials: the credentials Secret is named and exists,
        the address is set (and parses), the Secret holds a username and a password; each
        problem in upstream's words and order."""
        bmc = host.spec.bmc
        if not bmc.credentials_name:
            raise CredentialsProblem(
                "No BMC CredentialsName defined The BMC secret reference is empty",
                retry_after_s=None,
                metric="metal3_credentials_invalid_total",
            )
        secret_key = meta.ObjectKey(host.metadata.namespace, bmc.credentials_name)
        try:
            secret = self._store.get(meta.Secret, secret_key)
        except outcome.NotFound:
            raise CredentialsProblem(
                "BMC CredentialsName secret doesn't exist The BMC secret"
                f" {host.metadata.namespace}/{bmc.credentials_name} does not exist",
                retry_after_s=HOST_ERROR_RETRY_DELAY_S,
                metric="metal3_credentials_missing_total",
            ) from None
        if not bmc.address:
            raise CredentialsProblem(
                "Empty BMC address Missing BMC connection detail 'Address'",
                retry_after_s=None,
                metric="metal3_credentials_invalid_total",
            )
        try:
            _parse_address(bmc.address)
        except outcome.SpecError as exc:
            raise CredentialsProblem(
                exc.message, retry_after_s=None, metric="metal3_credentials_invalid_total"
            ) from exc
        known = self._secret_credentials.get(secret_key)
        if known is not None and known[0] is secret:
            return known[1]
        username = (secret.value("username") or "").strip()
        password = (secret.value("password") or "").strip()
        # Upstream's words (bmc.Credentials.Validate), "details" for the password included.
        for missing, value in (
            ("detail 'username'", username),
            ("details 'password'", password),
        ):
            if not value:
                raise CredentialsProblem(
                    "Validation error with BMC credentials: Missing BMC connection"
                    f" {missing} in credentials",
                    retry_after_s=None,
                    metric="metal3_credentials_invalid_total",
                )
        creds = _Creds(
            ports.Credentials(username=username, password=password),
            secret,
            _credentials_status(secret),
        )
        if len(self._secret_credentials) >= _STEADY_MAX:
            self._secret_credentials.clear()
        self._secret_credentials[secret_key] = (secret, creds)
        return creds

    def _credentials_failure(
        self, w: HostWork, key: meta.ObjectKey, problem: CredentialsProblem
    ) -> outcome.Outcome:
        """A registration error that upstream retries in 10 s (missing Secret) or on change."""
        if w.status.error_type == ET.REGISTRATION and w.status.error_message == problem.message:
            # Already recorded: no new write and no event spam while nothing changes.
            next_pass = problem.retry_after_s
        else:
            self._metrics.inc(problem.metric)
            w.record_failure(ET.REGISTRATION, problem.message)
            w.event("BMCCredentialError", problem.message, warning=True)
            next_pass = problem.retry_after_s
        self._update_conditions(w, key)
        return outcome.Outcome.done() if next_pass is None else outcome.Outcome.after(next_pass)

    def _provisioner(
        self, w: HostWork, key: meta.ObjectKey, creds: _Creds | None
    ) -> outcome.Outcome | None:
        spec = w.spec
        credentials = creds.credentials if creds else _NO_CREDENTIALS
        provisioner_id = w.status.provisioning.id
        known = self._host_data.get(key)
        if (
            known is not None
            and known[0] is spec
            and known[1] is credentials
            and known[2] == provisioner_id
        ):
            data = known[3]
        else:
            data = ports.HostData(
                key=key,
                bmc_address=spec.bmc.address,
                bmc_credentials=credentials,
                disable_certificate_verification=spec.bmc.disable_certificate_verification,
                boot_mac_address=spec.boot_mac_address,
                provisioner_id=provisioner_id,
            )
            if len(self._host_data) >= _STEADY_MAX:
                self._host_data.clear()
            self._host_data[key] = (spec, credentials, provisioner_id, data)
        try:
            w.prov = self._factory.new_provisioner(data, self._publisher(w))
        except outcome.ProvisionerNotReady:
            self._metrics.inc("metal3_provisioner_not_ready_total")
            return outcome.Outcome.after(PROVISIONER_NOT_READY_RETRY_DELAY_S)
        return None

    @staticmethod
    def _publisher(w: HostWork) -> Callable[[str, str], None]:
        def publish(reason: str, message: str) -> None:
            w.event(reason, message)

        return publish

    def _initiate_delete(self, w: HostWork, *, registered: bool) -> outcome.Outcome | None:
        """Upstream checkInitiateDelete: route a deleted host towards `deleting`."""
        if not w.deleting or w.state == S.DELETING:
            return None
        detach = annotations.detach_request(w.annotations)
        if detach is None and w.status.operational_status == OS.DETACHED:
            # Being re-attached: hold the delete until the host is managed again.
            self._metrics.inc("metal3_delete_delayed_for_detached_total")
            return None
        if detach is not None:
            if detach.delete_action == "delay":
                self._metrics.inc("metal3_delete_delayed_for_detached_total")
                return outcome.Outcome.after(UNMANAGED_RETRY_DELAY_S)
            return w.transition(E.DELETE)
        if not registered:
            # No credentials while deleting: nothing can be done on the BMC (upstream
            # "not registered and no creds").
            return w.transition(E.DELETE)
        if w.state in _DELETE_ROUTE:
            event = _DELETE_ROUTE[w.state]
            if event is None:
                if w.status.error_type == ET.REGISTRATION and w.status.error_count > 3:
                    return w.transition(E.DELETE)
                return None
            return w.transition(event)
        return w.transition(E.POWER_OFF_BEFORE_DELETE)

    def _detached(self, w: HostWork) -> outcome.Outcome | None:
        """Upstream checkDetachedHost (bmo.md 2.4): detach while the annotation asks for it;
        once it is gone (or cannot be honoured yet), a detach error is cleared (status OK,
        count 0) and a detached host is managed again, each in a pass of its own."""
        request = annotations.detach_request(w.annotations)
        if request is not None and w.state != S.DELETING:
            if w.status.operational_status == OS.DETACHED:
                return outcome.Outcome.after(UNMANAGED_RETRY_DELAY_S)
            if w.state in _DETACHABLE or request.force:
                return self._detach(w, request)
        if w.status.error_type == ET.DETACH:
            w.clear_error_and_count()
            return outcome.Outcome.after(0)
        if w.status.operational_status == OS.DETACHED:
            w.set(operational_status=OS.ERROR if w.status.error_type != ET.NONE else OS.OK)
            return outcome.Outcome.after(0)
        return None

    def _detach(self, w: HostWork, request: annotations.DetachRequest) -> outcome.Outcome:
        """Upstream detachHost: remove the host from the provisioner, then mark it detached."""
        if not request.valid:
            w.event(
                "InvalidAnnotationValue",
                "invalid detached annotation value; detaching with the defaults",
                warning=True,
            )
        result = w.provisioner().detach(force=request.force)
        if result.error_message:
            return w.record_failure(ET.DETACH, result.error_message)
        if result.dirty:
            if w.status.error_type == ET.DETACH:
                w.clear_error()
            return outcome.Outcome.after(result.requeue_after_s)
        if w.status.error_type == ET.DETACH:
            w.clear_error_and_count()
        w.set(operational_status=OS.DETACHED)
        w.event("Detached", "Host detached from the provisioner")
        return outcome.Outcome.after(UNMANAGED_RETRY_DELAY_S)

    def _ensure_registered(
        self, w: HostWork, key: meta.ObjectKey, creds: _Creds | None
    ) -> outcome.Outcome | None:
        if w.state in _NO_REGISTRATION or creds is None:
            return None
        secret, named = creds.secret, creds.status
        tried = w.status.tried_credentials
        changed = tried is not named and not _same_credentials(tried, secret)
        if changed:
            w.set(tried_credentials=named)
            self._metrics.inc("metal3_credentials_updated_total")  # upstream: on new tried creds
        result, provisioner_id = w.provisioner().register(
            self._access_data(w, key),
            credentials_changed=changed,
            restart_on_failure=w.restart_on_failure(ET.REGISTRATION),
        )
        if provisioner_id and provisioner_id != w.status.provisioning.id:
            w.set_provisioning(id=provisioner_id)
        if result.error_message:
            self._metrics.inc("metal3_host_registration_required_total")
            return w.record_failure(ET.REGISTRATION, result.error_message)
        if result.dirty:
            # Upstream: registration under way again; an earlier error is history (the count
            # stays until the work succeeds).
            self._metrics.inc("metal3_host_registration_required_total")
            w.clear_error()
            return outcome.Outcome.after(result.requeue_after_s)
        good = w.status.good_credentials
        new_credentials = good is not named and not _same_credentials(good, secret)
        if new_credentials:
            w.set(good_credentials=named)
            w.event("BMCAccessValidated", "Verified access to BMC")
        if w.status.error_type == ET.REGISTRATION or new_credentials:
            # Upstream registerHost: access works with these credentials, so whatever error
            # the host carried is history (the count is reset when a state's work succeeds).
            w.clear_error()
        return None

    def _access_data(self, w: HostWork, key: meta.ObjectKey) -> ports.ManagementAccessData:
        """What registration is told: built from the spec, status.provisioning (state and
        image), the operational status and whether inspection is disabled, so rebuilt only
        when one of those is a different object or value than on the last pass."""
        spec = w.spec
        provisioning = w.status.provisioning
        operational_status = w.status.operational_status
        disable_inspection = w.host.inspection_disabled()
        known = self._management.get(key)
        if (
            known is not None
            and known[0] is spec
            and known[1] is provisioning
            and known[2] is operational_status
            and known[3] is disable_inspection
        ):
            return known[4]
        data = ports.ManagementAccessData(
            boot_mode=spec.boot_mode or bmh.DEFAULT_BOOT_MODE,
            automated_cleaning_mode=spec.automated_cleaning_mode,
            state=provisioning.state,
            operational_status=operational_status,
            current_image=provisioning.image if provisioning.image.url else None,
            has_custom_deploy=spec.custom_deploy is not None,
            disable_power_off=spec.disable_power_off,
            cpu_architecture=spec.architecture,
            disable_inspection=disable_inspection,
            inspection_mode=spec.inspection_mode,
        )
        if len(self._management) >= _STEADY_MAX:
            self._management.clear()
        self._management[key] = (spec, provisioning, operational_status, disable_inspection, data)
        return data

    def _update_conditions(self, w: HostWork, key: meta.ObjectKey) -> None:
        """Conditions are a pure function of a few inputs and the current tuple: when both
        are what the last pass over this host left (the same tuple object, equal inputs), the
        tuple is already right and is neither recomputed nor compared field by field."""
        prov = w.prov
        status = w.status
        inputs = (
            status.provisioning.state,
            status.operational_status,
            status.error_type,
            prov.has_power_failure() if prov is not None else False,
            prov.get_health() if prov is not None else "",
            w.host.metadata.generation,
        )
        existing = status.conditions
        steady = self._steady_conditions.get(key)
        if steady is not None and steady[0] is existing and steady[1] == inputs:
            return
        want = conditions.desired(
            state=inputs[0],
            operational_status=inputs[1],
            error_type=inputs[2],
            power_failure=inputs[3],
            health=inputs[4],
        )
        updated = conditions.apply(existing, want, generation=inputs[5], now=w.now)
        if updated is not existing:
            w.set(conditions=updated)
        if len(self._steady_conditions) >= _STEADY_MAX:
            self._steady_conditions.clear()
        self._steady_conditions[key] = (updated, inputs)

    # --- writing ------------------------------------------------------------------------------

    def _persist(self, w: HostWork) -> None:
        """Write metadata, then status, each only when it changed."""
        host = w.host
        meta_changed = (
            w.annotations != host.metadata.annotations
            or tuple(w.finalizers) != host.metadata.finalizers
        )
        if meta_changed:
            host = self._store.update(
                host.with_meta(annotations=w.annotations, finalizers=tuple(w.finalizers))
            )
            if bmh.FINALIZER not in host.metadata.finalizers and w.deleting:
                return  # the object is gone: no status to write
        if w.status is not w.host.status and w.status != w.host.status:
            w.set(last_updated=w.now)
            self._store.update_status(change.replace(host, {"status": w.status}))

    def _publish(self, w: HostWork) -> None:
        for event in w.events:
            self._events.record(w.host, type=event.type, reason=event.reason, message=event.message)

"""Node reuse and clusterctl-move pauses under random interleavings (hypothesis): machines of
two MachineDeployments (one with nodeReuse) come and go, hosts provision and deprovision, the
Cluster is paused and unpaused, passes run in any order.

Invariants: never a host with two consumers or a consumer that does not exist; a host booked
for a deployment (node-reuse label) is only ever consumed by that deployment's machines; a
machine holding a host while the Cluster is not paused is never moved (block-move on its host
once quiet); once quiet with the Cluster paused, every claimed host is paused by CAPM3 and free
of block-move; unpausing removes exactly CAPM3's pauses.
"""

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from metalcubed.core.api import baremetalhost as bmh
from metalcubed.core.api import capi, meta
from metalcubed.core.api.capm3 import v1beta2 as v2
from metalcubed.core.reconcilers import capm3host, metal3machine
from tests.unit.reconcilers.capm3_lab import NS, Lab

P = bmh.ProvisioningState
HOSTS = [f"h{i}" for i in range(4)]
DEPLOYMENTS = {"md1": "reuse", "md2": None}
"""MachineDeployment -> the Metal3MachineTemplate its machines are cloned from (None: none)."""


class ReuseAndPause(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lab = Lab(seed=3)
        self.lab.store.create(v2.Metal3MachineTemplate.model_validate({
            "metadata": {"name": "reuse", "namespace": NS},
            "spec": {"nodeReuse": True, "template": {"spec": {}}}}))
        for name in HOSTS:
            self.lab.host(name)
        self.machines: dict[str, str] = {}  # name -> deployment
        self.count = 0
        self.paused = False

    # --- rules -------------------------------------------------------------------------------

    @rule(deployment=st.sampled_from(["md1", "md1", "md2"]))  # md1 (reuse) more often
    def scale_up(self, deployment: str) -> None:
        if len(self.lab.store.list(v2.Metal3Machine, namespace=NS)) >= 5:
            return
        name = f"m{self.count}"
        self.count += 1
        self.lab.machine(name, deployment=deployment, cloned_from=DEPLOYMENTS[deployment])
        self.machines[name] = deployment

    def _pass(self, name: str) -> None:
        """One pass; a host booked before it is taken only by a machine of its deployment."""
        booked = {h.metadata.name: h.metadata.labels[capm3host.NODE_REUSE_LABEL]
                  for h in self._hosts() if capm3host.NODE_REUSE_LABEL in h.metadata.labels}
        self.lab.reconciler.reconcile(meta.ObjectKey(NS, name))
        for host in self._hosts():
            ref = host.spec.consumer_ref
            if host.metadata.name in booked and ref is not None and ref.kind == "Metal3Machine":
                event("a booked host was taken again")
                assert f"md-{self.machines[ref.name]}" == booked[host.metadata.name], (
                    f"{ref.name} of {self.machines[ref.name]} took {host.metadata.name}, "
                    f"booked for {booked[host.metadata.name]}")

    @rule(data=st.data())
    def reconcile(self, data: st.DataObject) -> None:
        if self.machines:
            self._pass(data.draw(st.sampled_from(sorted(self.machines))))

    @rule()
    def reconcile_all(self) -> None:
        """A few passes over every machine (what a quiet moment of the controller does)."""
        for _ in range(4):
            for name in sorted(self.machines):
                self._pass(name)

    @rule()
    def bmo_moves_all(self) -> None:
        for name in HOSTS:
            self.bmo_moves(name)

    @rule(data=st.data())
    def scale_down(self, data: st.DataObject) -> None:
        live = [m.metadata.name for m in self.lab.store.list(v2.Metal3Machine, namespace=NS)
                if m.metadata.deletion_timestamp is None]
        if live:
            name = data.draw(st.sampled_from(sorted(live)))
            self.lab.store.delete(v2.Metal3Machine, meta.ObjectKey(NS, name))

    @rule(name=st.sampled_from(HOSTS))
    def bmo_moves(self, name: str) -> None:
        """BMO's part, abridged: an imaged host provisions, one without image comes back."""
        host = self.lab.get_host(name)
        state = host.status.provisioning.state
        if host.spec.image is not None and state in (P.AVAILABLE, P.READY):
            self.lab.set_state(name, P.PROVISIONED)
        elif host.spec.image is None and state == P.PROVISIONED:
            self.lab.set_state(name, P.DEPROVISIONING)
        elif state == P.DEPROVISIONING:
            self.lab.set_state(name, P.AVAILABLE)

    @rule()
    def pause(self) -> None:
        self._set_paused(True)

    @rule()
    def unpause(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        cluster = self.lab.store.get(capi.Cluster, meta.ObjectKey(NS, "c1"))
        self.lab.store.update(cluster.model_copy(update={"spec": cluster.spec.model_copy(
            update={"paused": paused})}))
        self.paused = paused

    # --- invariants --------------------------------------------------------------------------

    def _hosts(self) -> list[bmh.BareMetalHost]:
        return self.lab.store.list(bmh.BareMetalHost, namespace=NS)

    @invariant()
    def one_consumer_and_bookings_respected(self) -> None:
        live = {m.metadata.name for m in self.lab.store.list(v2.Metal3Machine, namespace=NS)}
        holders: dict[str, str] = {}
        for host in self._hosts():
            ref = host.spec.consumer_ref
            if ref is None or ref.kind != "Metal3Machine":
                continue
            assert ref.name in live, f"{host.metadata.name} consumed by gone {ref.name}"
            assert ref.name not in holders, f"{ref.name} holds {holders[ref.name]} and " \
                                            f"{host.metadata.name}"
            holders[ref.name] = host.metadata.name
            assert capm3host.NODE_REUSE_LABEL not in host.metadata.labels
        for host in self._hosts():
            booking = host.metadata.labels.get(capm3host.NODE_REUSE_LABEL)
            if booking is not None:
                event("a host was booked for node reuse")
                assert booking == "md-md1", booking  # only md1's template reuses
                ref = host.spec.consumer_ref
                assert ref is not None and ref.kind == "Cluster"

    def teardown(self) -> None:
        """Quiet: every machine reconciled until nothing changes, BMO settling hosts."""
        for _ in range(12):
            for name in sorted(self.machines):
                self._pass(name)
            for name in HOSTS:
                self.bmo_moves(name)
        held = {h.metadata.name: h for h in self._hosts()
                if h.spec.consumer_ref is not None and h.spec.consumer_ref.kind == "Metal3Machine"}
        for name, host in held.items():
            annotations = host.metadata.annotations
            event(f"quiet with a claimed host, cluster paused={self.paused}")
            if self.paused:
                assert annotations.get(bmh.PAUSED_ANNOTATION) == bmh.PAUSED_BY_CAPM3, name
                assert capm3host.BLOCK_MOVE_ANNOTATION not in annotations, name
                assert bmh.STATUS_ANNOTATION in annotations, name
            else:
                assert bmh.PAUSED_ANNOTATION not in annotations, name
                assert capm3host.BLOCK_MOVE_ANNOTATION in annotations, name
        for host in self._hosts():
            if host.metadata.name not in held and host.spec.consumer_ref is None:
                # released: nothing of CAPM3's left on it
                assert capm3host.BLOCK_MOVE_ANNOTATION not in host.metadata.annotations
                assert host.metadata.annotations.get(bmh.PAUSED_ANNOTATION) != (
                    bmh.PAUSED_BY_CAPM3)
                assert capi.CLUSTER_NAME_LABEL not in host.metadata.labels
        if not self.paused:  # every machine of a served deployment got a host when one was free
            waiting = [m for m in self.lab.store.list(v2.Metal3Machine, namespace=NS)
                       if metal3machine.HOST_ANNOTATION not in m.metadata.annotations
                       and m.metadata.deletion_timestamp is None]
            free = [h for h in self._hosts() if h.spec.consumer_ref is None
                    and h.status.provisioning.state == P.AVAILABLE]
            assert not (waiting and free), (
                f"{[m.metadata.name for m in waiting]} wait while "
                f"{[h.metadata.name for h in free]} are free")


TestReuseAndPause = ReuseAndPause.TestCase
TestReuseAndPause.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)

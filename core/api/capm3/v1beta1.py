"""CAPM3's infrastructure.cluster.x-k8s.io/v1beta1 kinds as pydantic models, field for field.

Written from upstream's CRD schema of this version (CAPM3 2f6d76b8, config/crd/bases), and
checked against it by tests/unit/api/test_capm3_models.py (every field, both ways). Class names
follow the schema path (a nested struct is named after its parent and field), not Go's type
names. Every optional field is `X | None` and left out of `to_wire()` when None, so an object
read from the API server serialises back unchanged. Times stay RFC 3339 strings.
Served (deprecated); converted to and from v1beta2 by `conversion`.
"""

from typing import Any, ClassVar, Literal

from pydantic import Field

from metalcubed.core.api import meta

API_VERSION = "infrastructure.cluster.x-k8s.io/v1beta1"


class APIEndpoint(meta.ApiModel):
    """ControlPlaneEndpoint represents the endpoint used to communicate with the control plane."""

    host: str
    port: int


class FailureDomainValue(meta.ApiModel):
    """FailureDomainSpec is the Schema for Cluster API failure domains."""

    attributes: dict[str, str] | None = None
    control_plane: bool | None = None


class Metal3ClusterSpec(meta.ApiModel):
    """Metal3ClusterSpec defines the desired state of Metal3Cluster."""

    cloud_provider_enabled: bool | None = None
    control_plane_endpoint: APIEndpoint | None = None
    failure_domains: dict[str, FailureDomainValue] | None = None
    no_cloud_provider: bool | None = None


class V1Beta1Condition(meta.ApiModel):
    """Condition defines an observation of a Cluster API resource operational state."""

    last_transition_time: str
    message: str | None = None
    reason: str | None = None
    severity: str | None = None
    status: str
    type: str


class Condition(meta.ApiModel):
    """Condition contains details for one aspect of the current state of this API Resource."""

    last_transition_time: str
    message: str
    observed_generation: int | None = None
    reason: str
    status: Literal["True", "False", "Unknown"]
    type: str


class Metal3ClusterV1Beta2Status(meta.ApiModel):
    conditions: tuple[Condition, ...] | None = None


class Metal3ClusterStatus(meta.ApiModel):
    """Metal3ClusterStatus defines the observed state of Metal3Cluster."""

    conditions: tuple[V1Beta1Condition, ...] | None = None
    failure_domains: dict[str, FailureDomainValue] | None = None
    failure_message: str | None = None
    failure_reason: str | None = None
    last_updated: str | None = None
    ready: bool | None = None
    v1beta2: Metal3ClusterV1Beta2Status | None = Field(default=None, alias="v1beta2")


class Metal3ClusterTemplateResource(meta.ApiModel):
    spec: Metal3ClusterSpec


class Metal3ClusterTemplateSpec(meta.ApiModel):
    """Metal3ClusterTemplateSpec defines the desired state of Metal3ClusterTemplate."""

    template: Metal3ClusterTemplateResource


class CustomDeploy(meta.ApiModel):
    """A custom deploy procedure."""

    method: str


class ObjectReference(meta.ApiModel):
    api_version: str | None = None
    field_path: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    resource_version: str | None = None
    uid: str | None = None


class HostSelectorRequirement(meta.ApiModel):
    key: str
    operator: str
    values: tuple[str, ...]


class HostSelector(meta.ApiModel):
    """HostSelector specifies matching criteria for labels on BareMetalHosts."""

    match_expressions: tuple[HostSelectorRequirement, ...] | None = None
    match_labels: dict[str, str] | None = None


class Image(meta.ApiModel):
    """Image is the image to be provisioned."""

    checksum: str | None = None
    checksum_type: Literal["md5", "sha256", "sha512"] | None = None
    format: Literal["raw", "qcow2", "vdi", "vmdk", "live-iso"] | None = None
    url: str


class ObjectRef(meta.ApiModel):
    name: str | None = None
    namespace: str | None = None


class Metal3MachineSpec(meta.ApiModel):
    """Metal3MachineSpec defines the desired state of Metal3Machine."""

    automated_cleaning_mode: Literal["metadata", "disabled"] | None = None
    custom_deploy: CustomDeploy | None = None
    data_template: ObjectReference | None = None
    failure_domain: str | None = None
    host_selector: HostSelector | None = None
    image: Image | None = None
    meta_data: ObjectRef | None = None
    network_data: ObjectRef | None = None
    provider_id: str | None = Field(default=None, alias="providerID")
    user_data: ObjectRef | None = None


class MachineAddress(meta.ApiModel):
    """MachineAddress contains information for the node's address."""

    address: str
    type: Literal["Hostname", "ExternalIP", "InternalIP", "ExternalDNS", "InternalDNS"]


class Metal3MachineV1Beta2Status(meta.ApiModel):
    conditions: tuple[Condition, ...] | None = None


class Metal3MachineStatus(meta.ApiModel):
    """Metal3MachineStatus defines the observed state of Metal3Machine."""

    addresses: tuple[MachineAddress, ...] | None = None
    conditions: tuple[V1Beta1Condition, ...] | None = None
    failure_message: str | None = None
    failure_reason: str | None = None
    last_updated: str | None = None
    meta_data: ObjectRef | None = None
    network_data: ObjectRef | None = None
    phase: str | None = None
    ready: bool | None = None
    rendered_data: ObjectReference | None = None
    user_data: ObjectRef | None = None
    v1beta2: Metal3MachineV1Beta2Status | None = Field(default=None, alias="v1beta2")


class Metal3MachineTemplateResource(meta.ApiModel):
    spec: Metal3MachineSpec


class Metal3MachineTemplateSpec(meta.ApiModel):
    """Metal3MachineTemplateSpec defines the desired state of Metal3MachineTemplate."""

    node_reuse: bool | None = None
    template: Metal3MachineTemplateResource


class FromPool(meta.ApiModel):
    """A `*FromIPPool` item. Upstream's v1beta1 schema also requires apiGroup and kind, which
    refuses upstream's own example; ours (controllers/kube/capm3crds.py) requires key and name
    as v1beta2 does, and so does this model."""

    api_group: str | None = None
    key: str
    kind: str | None = None
    name: str


class MetaDataFromAnnotation(meta.ApiModel):
    annotation: str
    key: str
    object: Literal["machine", "metal3machine", "baremetalhost"]


class MetaDataHostInterface(meta.ApiModel):
    """MetaDataHostInterface contains the information to render the object name."""

    from_boot_mac: bool | None = Field(default=None, alias="fromBootMAC")
    interface: str | None = None
    key: str


class MetaDataFromLabel(meta.ApiModel):
    key: str
    label: str
    object: Literal["machine", "metal3machine", "baremetalhost"]


class MetaDataIndex(meta.ApiModel):
    """MetaDataIndex contains the information to render the index."""

    key: str
    offset: int | None = None
    prefix: str | None = None
    step: int | None = None
    suffix: str | None = None


class MetaDataNamespace(meta.ApiModel):
    """MetaDataNamespace contains the information to render the namespace."""

    key: str


class MetaDataObjectName(meta.ApiModel):
    """MetaDataObjectName contains the information to render the object name."""

    key: str
    object: Literal["machine", "metal3machine", "baremetalhost"]


class MetaDataString(meta.ApiModel):
    """MetaDataString contains the information to render the string."""

    key: str
    value: str


class MetaData(meta.ApiModel):
    dns_servers_from_ip_pool: tuple[FromPool, ...] | None = Field(
        default=None, alias="dnsServersFromIPPool"
    )
    from_annotations: tuple[MetaDataFromAnnotation, ...] | None = None
    from_host_interfaces: tuple[MetaDataHostInterface, ...] | None = None
    from_labels: tuple[MetaDataFromLabel, ...] | None = None
    gateways_from_ip_pool: tuple[FromPool, ...] | None = Field(
        default=None, alias="gatewaysFromIPPool"
    )
    indexes: tuple[MetaDataIndex, ...] | None = None
    ip_addresses_from_ip_pool: tuple[FromPool, ...] | None = Field(
        default=None, alias="ipAddressesFromIPPool"
    )
    namespaces: tuple[MetaDataNamespace, ...] | None = None
    object_names: tuple[MetaDataObjectName, ...] | None = None
    prefixes_from_ip_pool: tuple[FromPool, ...] | None = Field(
        default=None, alias="prefixesFromIPPool"
    )
    strings: tuple[MetaDataString, ...] | None = None


class NetworkLinkEthernetMacFromAnnotation(meta.ApiModel):
    annotation: str
    object: Literal["machine", "metal3machine", "baremetalhost"]


class NetworkLinkEthernetMac(meta.ApiModel):
    from_annotation: NetworkLinkEthernetMacFromAnnotation | None = None
    from_host_interface: str | None = None
    string: str | None = None


class NetworkDataLinkBond(meta.ApiModel):
    """NetworkDataLinkBond represents a bond link object."""

    bond_links: tuple[str, ...] | None = None
    bond_mode: Literal[
        "balance-rr",
        "active-backup",
        "balance-xor",
        "broadcast",
        "balance-tlb",
        "balance-alb",
        "802.3ad",
    ]
    bond_xmit_hash_policy: Literal["layer2", "layer3+4", "layer2+3"] | None = None
    id: str
    mac_address: NetworkLinkEthernetMac
    mtu: int | None = None
    name: str | None = None
    parameters: dict[str, Any] | None = None


class NetworkDataLinkEthernet(meta.ApiModel):
    """NetworkDataLinkEthernet represents an ethernet link object."""

    id: str
    mac_address: NetworkLinkEthernetMac
    mtu: int | None = None
    name: str | None = None
    type: Literal["bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif", "phy"]


class NetworkDataLinkVlan(meta.ApiModel):
    """NetworkDataLinkVlan represents a vlan link object."""

    id: str
    mac_address: NetworkLinkEthernetMac
    mtu: int | None = None
    name: str | None = None
    vlan_id: int = Field(alias="vlanID")
    vlan_link: str


class NetworkDataLink(meta.ApiModel):
    bonds: tuple[NetworkDataLinkBond, ...] | None = None
    ethernets: tuple[NetworkDataLinkEthernet, ...] | None = None
    vlans: tuple[NetworkDataLinkVlan, ...] | None = None


class FromPoolAnnotation(meta.ApiModel):
    annotation: str
    object: Literal["machine", "metal3machine", "baremetalhost"]


class IPPoolReference(meta.ApiModel):
    """FromPoolRef is a reference to a IP pool to allocate an address from."""

    api_group: str | None = None
    kind: str
    name: str


class NetworkGatewayv4(meta.ApiModel):
    from_ip_pool: str | None = Field(default=None, alias="fromIPPool")
    from_pool_annotation: FromPoolAnnotation | None = None
    from_pool_ref: IPPoolReference | None = None
    string: str | None = None


class NetworkDataServicev4(meta.ApiModel):
    dns: tuple[str, ...] | None = None
    dns_from_ip_pool: str | None = Field(default=None, alias="dnsFromIPPool")


class NetworkDataRoutev4(meta.ApiModel):
    """NetworkDataRoutev4 represents an ipv4 route object."""

    gateway: NetworkGatewayv4
    network: str
    prefix: int | None = None
    services: NetworkDataServicev4 | None = None


class NetworkDataIPv4(meta.ApiModel):
    """NetworkDataIPv4 represents an ipv4 static network object."""

    from_pool_annotation: FromPoolAnnotation | None = None
    from_pool_ref: IPPoolReference | None = None
    id: str
    ip_address_from_ip_pool: str | None = Field(default=None, alias="ipAddressFromIPPool")
    link: str
    routes: tuple[NetworkDataRoutev4, ...] | None = None


class NetworkDataIPv4DHCP(meta.ApiModel):
    """NetworkDataIPv4DHCP represents an ipv4 DHCP network object."""

    id: str
    link: str
    routes: tuple[NetworkDataRoutev4, ...] | None = None


class NetworkGatewayv6(meta.ApiModel):
    from_ip_pool: str | None = Field(default=None, alias="fromIPPool")
    from_pool_annotation: FromPoolAnnotation | None = None
    from_pool_ref: IPPoolReference | None = None
    string: str | None = None


class NetworkDataServicev6(meta.ApiModel):
    dns: tuple[str, ...] | None = None
    dns_from_ip_pool: str | None = Field(default=None, alias="dnsFromIPPool")


class NetworkDataRoutev6(meta.ApiModel):
    """NetworkDataRoutev6 represents an ipv6 route object."""

    gateway: NetworkGatewayv6
    network: str
    prefix: int | None = None
    services: NetworkDataServicev6 | None = None


class NetworkDataIPv6(meta.ApiModel):
    """NetworkDataIPv6 represents an ipv6 static network object."""

    from_pool_annotation: FromPoolAnnotation | None = None
    from_pool_ref: IPPoolReference | None = None
    id: str
    ip_address_from_ip_pool: str = Field(alias="ipAddressFromIPPool")
    link: str
    routes: tuple[NetworkDataRoutev6, ...] | None = None


class NetworkDataIPv6DHCP(meta.ApiModel):
    """NetworkDataIPv6DHCP represents an ipv6 DHCP network object."""

    id: str
    link: str
    routes: tuple[NetworkDataRoutev6, ...] | None = None


class NetworkDataNetwork(meta.ApiModel):
    ipv4: tuple[NetworkDataIPv4, ...] | None = None
    ipv4_dhcp: tuple[NetworkDataIPv4DHCP, ...] | None = Field(default=None, alias="ipv4DHCP")
    ipv6: tuple[NetworkDataIPv6, ...] | None = None
    ipv6_dhcp: tuple[NetworkDataIPv6DHCP, ...] | None = Field(default=None, alias="ipv6DHCP")
    ipv6_slaac: tuple[NetworkDataIPv6DHCP, ...] | None = Field(default=None, alias="ipv6SLAAC")


class NetworkDataService(meta.ApiModel):
    dns: tuple[str, ...] | None = None
    dns_from_ip_pool: str | None = Field(default=None, alias="dnsFromIPPool")


class NetworkData(meta.ApiModel):
    links: NetworkDataLink | None = None
    networks: NetworkDataNetwork | None = None
    services: NetworkDataService | None = None


class Metal3DataTemplateSpec(meta.ApiModel):
    """Metal3DataTemplateSpec defines the desired state of Metal3DataTemplate."""

    cluster_name: str
    meta_data: MetaData | None = None
    network_data: NetworkData | None = None
    template_reference: str | None = None


class Metal3DataTemplateStatus(meta.ApiModel):
    """Metal3DataTemplateStatus defines the observed state of Metal3DataTemplate."""

    indexes: dict[str, int] | None = None
    last_updated: str | None = None


class Metal3DataClaimSpec(meta.ApiModel):
    """Metal3DataClaimSpec defines the desired state of Metal3DataClaim."""

    template: ObjectReference


class Metal3DataClaimStatus(meta.ApiModel):
    """Metal3DataClaimStatus defines the observed state of Metal3DataClaim."""

    error_message: str | None = None
    rendered_data: ObjectReference | None = None


class Metal3DataSpec(meta.ApiModel):
    """Metal3DataSpec defines the desired state of Metal3Data."""

    claim: ObjectReference
    index: int | None = None
    meta_data: ObjectRef | None = None
    network_data: ObjectRef | None = None
    template: ObjectReference
    template_reference: str | None = None


class Metal3DataStatus(meta.ApiModel):
    """Metal3DataStatus defines the observed state of Metal3Data."""

    error_message: str | None = None
    ready: bool | None = None


class RemediationStrategy(meta.ApiModel):
    """Strategy field defines remediation strategy."""

    retry_limit: int | None = None
    timeout: str | None = None
    type: str | None = None


class Metal3RemediationSpec(meta.ApiModel):
    """Metal3RemediationSpec defines the desired state of Metal3Remediation."""

    strategy: RemediationStrategy | None = None


class Metal3RemediationStatus(meta.ApiModel):
    """Metal3RemediationStatus defines the observed state of Metal3Remediation."""

    last_remediated: str | None = None
    phase: str | None = None
    retry_count: int | None = None


class Metal3RemediationTemplateResource(meta.ApiModel):
    spec: Metal3RemediationSpec


class Metal3RemediationTemplateSpec(meta.ApiModel):
    """Metal3RemediationTemplateSpec defines the desired state of Metal3RemediationTemplate."""

    template: Metal3RemediationTemplateResource


class Metal3RemediationTemplateStatusStatus(meta.ApiModel):
    last_remediated: str | None = None
    phase: str | None = None
    retry_count: int | None = None


class Metal3RemediationTemplateStatus(meta.ApiModel):
    """Metal3RemediationTemplateStatus defines the observed state of Metal3RemediationTemplate."""

    status: Metal3RemediationTemplateStatusStatus


class Metal3Cluster(meta.Resource):
    """Metal3Cluster (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3Cluster"
    PLURAL: ClassVar[str] = "metal3clusters"

    spec: Metal3ClusterSpec | None = None
    status: Metal3ClusterStatus | None = None


class Metal3ClusterTemplate(meta.Resource):
    """Metal3ClusterTemplate (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3ClusterTemplate"
    PLURAL: ClassVar[str] = "metal3clustertemplates"
    HAS_STATUS: ClassVar[bool] = False

    spec: Metal3ClusterTemplateSpec | None = None


class Metal3Machine(meta.Resource):
    """Metal3Machine (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3Machine"
    PLURAL: ClassVar[str] = "metal3machines"

    spec: Metal3MachineSpec | None = None
    status: Metal3MachineStatus | None = None


class Metal3MachineTemplate(meta.Resource):
    """Metal3MachineTemplate (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3MachineTemplate"
    PLURAL: ClassVar[str] = "metal3machinetemplates"
    HAS_STATUS: ClassVar[bool] = False

    spec: Metal3MachineTemplateSpec | None = None


class Metal3DataTemplate(meta.Resource):
    """Metal3DataTemplate (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3DataTemplate"
    PLURAL: ClassVar[str] = "metal3datatemplates"

    spec: Metal3DataTemplateSpec | None = None
    status: Metal3DataTemplateStatus | None = None


class Metal3DataClaim(meta.Resource):
    """Metal3DataClaim (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3DataClaim"
    PLURAL: ClassVar[str] = "metal3dataclaims"

    spec: Metal3DataClaimSpec | None = None
    status: Metal3DataClaimStatus | None = None


class Metal3Data(meta.Resource):
    """Metal3Data (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3Data"
    PLURAL: ClassVar[str] = "metal3datas"

    spec: Metal3DataSpec | None = None
    status: Metal3DataStatus | None = None


class Metal3Remediation(meta.Resource):
    """Metal3Remediation (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3Remediation"
    PLURAL: ClassVar[str] = "metal3remediations"

    spec: Metal3RemediationSpec | None = None
    status: Metal3RemediationStatus | None = None


class Metal3RemediationTemplate(meta.Resource):
    """Metal3RemediationTemplate (v1beta1)."""

    API_VERSION: ClassVar[str] = API_VERSION
    KIND: ClassVar[str] = "Metal3RemediationTemplate"
    PLURAL: ClassVar[str] = "metal3remediationtemplates"

    spec: Metal3RemediationTemplateSpec | None = None
    status: Metal3RemediationTemplateStatus | None = None

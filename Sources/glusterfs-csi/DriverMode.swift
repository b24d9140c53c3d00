/// Which CSI services this process serves.
enum DriverMode: String, CaseIterable, Sendable {
    /// Identity + Controller: one per cluster (StatefulSet), talks to Heketi.
    case controller
    /// Identity + Node: one per Kubernetes node (DaemonSet), mounts volumes.
    case node
    /// Everything in one process, for local runs and tests.
    case all

    var servesController: Bool { self != .node }
    var servesNode: Bool { self != .controller }
}

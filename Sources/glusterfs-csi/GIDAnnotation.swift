import CSICore
import CurlTransport
import Kubernetes
import Logging

/// Starts the controller's GID annotation (GIDAnnotationReconciler) when it is wanted and the
/// process runs in a cluster; says with one log line why not otherwise.
enum GIDAnnotation {
    /// The running reconciler's task, or nil when it is off.
    static func start(_ configuration: DriverConfiguration, logger: Logger) -> Task<Void, Never>? {
        guard configuration.annotateGID else {
            logger.info("gid annotation off: --annotate-gid=false")
            return nil
        }
        let config: InClusterConfig
        switch InClusterConfig.load(
            serviceAccountDirectory: configuration.kubeServiceAccountDirectory,
            environment: DriverConfiguration.processEnvironment())
        {
        case .success(let found):
            config = found
        case .failure(let notInCluster):
            logger.info("gid annotation off: not running in a cluster (\(notInCluster.reason))")
            return nil
        }
        var reconcilerLogger = logger
        reconcilerLogger[metadataKey: "component"] = "gid-annotation"
        logger.info(
            "gid annotation on", metadata: ["api": "\(config.apiURL)", "driver": "\(configuration.driverName)"])
        let client = KubernetesClient(
            config: config, transport: CurlHTTPTransport(caBundlePath: config.caBundlePath, maxIdleHandles: 2),
            userAgent: "glusterfs-csi/\(DriverInfo.version)")
        let reconciler = GIDAnnotationReconciler(
            client: client, driverName: configuration.driverName, logger: reconcilerLogger)
        return Task.detached { await reconciler.run() }
    }
}

import CSICore
import CSIProto
import Testing

@testable import Node

/// One invalid request and what the answer must say.
struct InvalidCase: CustomTestStringConvertible, Sendable {
    let name: String
    let fragment: String
    let code: StatusCode
    let change: @Sendable (inout Csi_V1_NodeStageVolumeRequest) -> Void

    init(
        _ name: String, _ fragment: String, code: StatusCode = .invalidArgument,
        _ change: @escaping @Sendable (inout Csi_V1_NodeStageVolumeRequest) -> Void
    ) {
        self.name = name
        self.fragment = fragment
        self.code = code
        self.change = change
    }

    var testDescription: String { name }
}

private func flags(_ flags: String...) -> @Sendable (inout Csi_V1_NodeStageVolumeRequest) -> Void {
    { $0.volumeCapability = capability(flags: flags) }
}

private func contextValue(_ key: String, _ value: String?) -> @Sendable (inout Csi_V1_NodeStageVolumeRequest) -> Void {
    { $0.volumeContext[key] = value }
}

private let stageCases: [InvalidCase] = [
    InvalidCase("no volume ID", "volume_id is required") { $0.volumeID = "" },
    InvalidCase("volume ID with a space", "volume_id must be") { $0.volumeID = "a b" },
    InvalidCase("volume ID too long", "at most 128") { $0.volumeID = String(repeating: "x", count: 129) },
    InvalidCase("a snapshot ID", "is a snapshot ID, not a volume") {
        $0.volumeID = "s1:0123456789abcdef0123456789abcdef:http://heketi:8080"
    },
    InvalidCase("no staging path", "staging_target_path is required") { $0.stagingTargetPath = "" },
    InvalidCase("relative staging path", "absolute, clean") { $0.stagingTargetPath = "var/lib/x" },
    InvalidCase("staging path with ..", "absolute, clean") { $0.stagingTargetPath = "/var/lib/../etc" },
    InvalidCase("staging path with .", "absolute, clean") { $0.stagingTargetPath = "/var/./lib" },
    InvalidCase("staging path with //", "absolute, clean") { $0.stagingTargetPath = "/var//lib" },
    InvalidCase("staging path with trailing /", "absolute, clean") { $0.stagingTargetPath = "/var/lib/" },
    InvalidCase("staging path /", "absolute, clean") { $0.stagingTargetPath = "/" },
    InvalidCase("staging path with newline", "absolute, clean") { $0.stagingTargetPath = "/var/lib\n/x" },
    InvalidCase("staging path with a space", "shell characters") { $0.stagingTargetPath = "/var/lib/a b" },
    InvalidCase("staging path with a glob", "shell characters") { $0.stagingTargetPath = "/var/lib/*" },
    InvalidCase("no capability", "volume_capability is required") { $0.clearVolumeCapability() },
    InvalidCase("block capability", "block access is not supported") {
        $0.volumeCapability.block = Csi_V1_VolumeCapability.BlockVolume()
    },
    InvalidCase("no access type", "access_type is required") { $0.volumeCapability.accessType = nil },
    InvalidCase("fs_type ext4", "fs_type must be empty or 'glusterfs'") {
        $0.volumeCapability = capability(fsType: "ext4")
    },
    InvalidCase("unknown access mode", "not a known access mode") { $0.volumeCapability.accessMode.mode = .unknown },
    InvalidCase("no access mode", "access_mode is required") { $0.volumeCapability.clearAccessMode() },
    InvalidCase("volume_mount_group", "volume_mount_group is not supported") {
        $0.volumeCapability.mount.volumeMountGroup = "2000"
    },
    InvalidCase("empty context", "has no Gluster volume") { $0.volumeContext = [:] },
    InvalidCase("no hosts", "has no storage hosts") { $0.volumeContext = ["glusterVolume": "gv0"] },
    InvalidCase("empty host list", "1 to 64 storage hosts", contextValue("glusterHosts", " , ")),
    InvalidCase("host with a space", "invalid host 'a b'", contextValue("glusterHosts", "a b,c")),
    InvalidCase("host starting with -", "invalid host '-o'", contextValue("glusterHosts", "-o")),
    InvalidCase("host with a slash", "invalid host", contextValue("glusterHosts", "a/../b")),
    InvalidCase("host with a colon", "invalid host", contextValue("glusterHosts", "a:/vol")),
    InvalidCase("IPv6 host", "use a DNS name", contextValue("glusterHosts", "fd00::2")),
    InvalidCase("volume with a slash", "Gluster volume name", contextValue("glusterVolume", "gv0/sub")),
    InvalidCase("volume ..", "Gluster volume name", contextValue("glusterVolume", "..")),
    InvalidCase("volume with comma", "Gluster volume name", contextValue("glusterVolume", "a,log-file=/x")),
    InvalidCase("volume starting with -", "Gluster volume name", contextValue("glusterVolume", "-x")),
    InvalidCase("conflicting volume keys", "different Gluster volumes", contextValue("volume", "other")),
    InvalidCase("conflicting host keys", "different hosts", contextValue("server", "elsewhere")),
    InvalidCase("gid not a number", "'gid' must be a number", contextValue("gid", "abc")),
    InvalidCase("gid too big", "'gid' must be a number", contextValue("gid", "4294967295")),
    InvalidCase("odd heketi ID", "'heketiVolumeID' must be", contextValue("heketiVolumeID", "x y")),
    InvalidCase("flag with a comma", "contains a comma", flags("noatime,log-file=/etc/passwd")),
    InvalidCase("flag with a space", "not a valid option", flags("noatime ")),
    InvalidCase("flag with a slash", "not a valid option", flags("attribute-timeout=1/../x")),
    InvalidCase("flag with quotes", "not a valid option", flags("context=\"x\"")),
    InvalidCase("empty flag", "not a valid option", flags("")),
    InvalidCase(
        "backup-volfile-servers", "'backup-volfile-servers' is not allowed", flags("backup-volfile-servers=evil")),
    InvalidCase("volfile-server", "changes what is mounted", flags("volfile-server=evil")),
    InvalidCase("subdir-mount", "changes what is mounted", flags("subdir-mount=x")),
    InvalidCase("transport", "changes what is mounted", flags("transport=rdma")),
    InvalidCase(
        "auto_unmount from an in-tree class", "'auto_unmount' is not allowed: the driver adds it itself",
        flags("auto_unmount")),
    InvalidCase("log-file", "writes a file at a path", flags("log-file=x")),
    InvalidCase("dump-fuse", "writes a file at a path", flags("dump-fuse=x")),
    InvalidCase("xlator-option", "passes options through", flags("xlator-option=x")),
    InvalidCase("fuse-mountopts", "passes options through", flags("fuse-mountopts=x")),
    InvalidCase("dev", "weakens the node's security", flags("dev")),
    InvalidCase("suid", "weakens the node's security", flags("suid")),
    InvalidCase("no-root-squash", "weakens the node's security", flags("no-root-squash=yes")),
    InvalidCase("unknown option", "unknown option 'frobnicate'", flags("frobnicate")),
    InvalidCase("unknown valued option", "unknown option 'frob'", flags("frob=1")),
    InvalidCase("bad log level", "log-level must be one of", flags("log-level=LOUD")),
    InvalidCase("log level without value", "needs a value", flags("log-level")),
    InvalidCase("flag with a value", "takes no value", flags("noatime=1")),
    InvalidCase("bad boolean", "must be yes or no", flags("use-readdirp=maybe")),
    InvalidCase("bad seconds", "number of seconds", flags("entry-timeout=1.")),
    InvalidCase("bad count", "whole number", flags("lru-limit=-1")),
    InvalidCase("oom score out of range", "from -1000 to 1000", flags("oom-score-adj=2000")),
    InvalidCase("rw with a read-only mode", "contradicts the read-only access mode") {
        $0.volumeCapability = capability(.multiNodeReaderOnly, flags: ["rw"])
    },
]

@Suite("Request validation")
struct NodeValidationTests {
    @Test("invalid NodeStageVolume requests are rejected before anything is mounted", arguments: stageCases)
    func stage(_ invalid: InvalidCase) async throws {
        let fixture = Fixture()
        var request = fixture.stageRequest()
        invalid.change(&request)
        let error = await csiError { try await fixture.stage(request) }
        #expect(error?.code == invalid.code, "\(String(describing: error))")
        #expect(error?.message.contains(invalid.fragment) == true, "\(String(describing: error))")
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("accepted mount flags are normalized")
    func acceptedFlags() throws {
        let options = try GlusterMountOptions(
            mountFlags: [
                "ro", "noatime", "nodev", "nosuid", "acl", "_netdev", "log-level=warning", "direct-io-mode=Disable",
                "use-readdirp=NO", "entry-timeout=0", "negative-timeout=1.5", "background-qlen=64",
                "oom-score-adj=-500", "fopen-keep-cache", "noatime",
            ], readOnlyAccessMode: false)
        #expect(options.readOnly)
        #expect(
            options.userOptions == [
                "noatime", "nodev", "nosuid", "acl", "_netdev", "log-level=WARNING", "direct-io-mode=disable",
                "use-readdirp=no", "entry-timeout=0", "negative-timeout=1.5", "background-qlen=64",
                "oom-score-adj=-500", "fopen-keep-cache",
            ])
        let built = options.mountOptions(logFile: "/l/x.log", backupHosts: [], autoUnmount: false)
        #expect(built.first == "ro")
        #expect(!built.contains("log-level=ERROR"))
        #expect(!built.contains { $0.hasPrefix("backup-volfile-servers") })
    }

    @Test("publishing without a staging path is FAILED_PRECONDITION: this driver stages first")
    func publishWithoutStaging() async throws {
        let fixture = Fixture()
        var request = fixture.publishRequest()
        request.stagingTargetPath = ""
        let error = await csiError { try await fixture.publish(request) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("staging_target_path is required") == true)
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("invalid NodePublishVolume requests")
    func publish() async throws {
        let fixture = Fixture()
        let cases: [(String, (inout Csi_V1_NodePublishVolumeRequest) -> Void)] = [
            ("volume_id is required", { $0.volumeID = "" }),
            ("target_path is required", { $0.targetPath = "" }),
            ("target_path must be an absolute", { $0.targetPath = "pods/x" }),
            ("target_path must be an absolute", { $0.targetPath = "/pods/../x" }),
            ("must differ from staging_target_path", { $0.targetPath = $0.stagingTargetPath }),
            ("volume_capability is required", { $0.clearVolumeCapability() }),
            ("block access", { $0.volumeCapability.block = .init() }),
            ("not allowed", { $0.volumeCapability = capability(flags: ["volfile-server=x"]) }),
        ]
        for (fragment, change) in cases {
            var request = fixture.publishRequest()
            change(&request)
            let error = await csiError { try await fixture.publish(request) }
            #expect(error?.code == .invalidArgument, "\(fragment): \(String(describing: error))")
            #expect(error?.message.contains(fragment) == true, "\(fragment): \(String(describing: error))")
        }
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("invalid unpublish, unstage and stats requests")
    func others() async throws {
        let fixture = Fixture()
        let service = fixture.service
        let context = fixture.context
        var unpublish = fixture.unpublishRequest()
        unpublish.targetPath = "relative"
        var unstage = fixture.unstageRequest()
        unstage.volumeID = ""
        var stats = fixture.statsRequest()
        stats.volumePath = ""
        var statsStaging = fixture.statsRequest()
        statsStaging.stagingTargetPath = "/a/../b"
        let checks: [(String, () async throws -> Void)] = [
            ("target_path must be", { _ = try await service.unpublishVolume(unpublish, context: context) }),
            ("volume_id is required", { _ = try await service.unstageVolume(unstage, context: context) }),
            ("volume_path is required", { _ = try await service.getVolumeStats(stats, context: context) }),
            ("staging_target_path must be", { _ = try await service.getVolumeStats(statsStaging, context: context) }),
        ]
        for (fragment, call) in checks {
            let error = await csiError(call)
            #expect(error?.code == .invalidArgument, "\(fragment): \(String(describing: error))")
            #expect(error?.message.contains(fragment) == true, "\(fragment): \(String(describing: error))")
        }
        #expect(fixture.mounter.calls.isEmpty)
    }

    @Test("bad node configuration is refused")
    func configuration() {
        for (nodeID, directory) in [
            ("", "/var/log/x"), ("n", "relative"), ("n", "/var/log/a,b"), ("n", "/var/log/a b"),
        ] {
            #expect(throws: NodeConfigurationError.self) {
                try NodeService(
                    nodeID: nodeID, mounter: FakeMounter(), kubeletDirectory: KubeletDirectory("/"),
                    logDirectory: directory)
            }
        }
    }
}

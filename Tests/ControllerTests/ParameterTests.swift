import CSICore
import CSIProto
import Controller
import Testing

@Suite struct ParameterTests {
    @Test(arguments: [
        (
            ["volumetype": "raid5"],
            "parameter volumetype: expected replicate:N (N = 1 to 3), disperse:D:R (2:1, 4:2, 8:3 or 8:4) or none, got 'raid5'"
        ),
        (["volumetype": "replicate:4"], "got 'replicate:4'"),
        (["volumetype": "disperse:3:1"], "got 'disperse:3:1'"),
        (["gidMin": "100"], "parameter gidMin: expected an integer from 2000 to 2147483647, got '100'"),
        (["gidMin": "5000", "gidMax": "4000"], "gidMin must not be greater than gidMax"),
        (["resturl": "heketi:8080"], "parameter resturl: expected an http:// or https:// URL"),
        // Found by fuzzing: no host, a non-ASCII host, a control character (all go into volume IDs).
        (["resturl": "https:///"], "parameter resturl: expected an http:// or https:// URL"),
        (["resturl": "http://"], "parameter resturl: expected an http:// or https:// URL"),
        (["resturl": "http://hé:8080"], "parameter resturl: expected an http:// or https:// URL"),
        (["resturl": "http://h\u{7}:8080"], "parameter resturl: expected an http:// or https:// URL"),
        (["resturl": "http://a", "RESTURL": "http://b"], "parameters 'RESTURL' and 'resturl' are the same parameter"),
        (["snapfactor": "0.5"], "parameter snapfactor: expected a number from 1 to 100"),
        (["volumenameprefix": "has_underscore"], "no '_'"),
        (["volumeoptions": "justone"], "parameter volumeoptions"),
        (["clusterid": "xyz!"], "parameter clusterid"),
        (["restauthenabled": "maybe"], "expected true or false"),
        (["bogus": "1"], "unknown StorageClass parameter 'bogus'"),
        (["restuser": "user"], "the CSI controller must act as 'admin'"),
    ])
    func badParametersAreInvalidArgumentAndSayWhatIsAccepted(_ parameters: [String: String], _ expected: String) async {
        let error = await csiError {
            _ = try await makeService(FakeHeketi()).createVolume(
                createRequest(parameters: parameters), context: context())
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error")")
    }

    @Test func keysAreCaseInsensitiveAndInTreeExtrasAreAccepted() async throws {
        let heketi = FakeHeketi()
        _ = try await makeService(heketi).createVolume(
            createRequest(parameters: [
                "RESTURL": heketiURL, "restUser": "admin", "VolumeType": "disperse:4:2", "customepnameprefix": "x",
                "volumeoptions": "client.ssl on, server.ssl on", "snapFactor": "10", "clusterid": heketi.clusterID,
                "csi.storage.k8s.io/provisioner-secret-name": "heketi",
            ]), context: context())
        let volume = try #require(heketi.volumes.first)
        #expect(volume.durability == .disperse(data: 4, redundancy: 2))
        #expect(volume.sizeGiB == 4, "disperse 4:2 needs at least 4 GiB")
        #expect(volume.glusterVolumeOptions == ["client.ssl on", "server.ssl on"])
        #expect(volume.snapshotFactor == 10)
    }

    @Test func missingResturlWithoutADefaultSaysWhatToDo() async {
        let error = await csiError {
            _ = try await makeService(FakeHeketi(), defaultURL: nil).createVolume(createRequest(), context: context())
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("--heketi-url") == true)
    }

    @Test(arguments: [
        (Int64(0), Int64(0), 1), (Int64(1), Int64(0), 1), (gib, Int64(0), 1), (gib + 1, Int64(0), 2),
        (10 * gib, 10 * gib, 10),
    ])
    func capacityIsRoundedUpToWholeGiB(_ required: Int64, _ limit: Int64, _ expected: Int) async throws {
        let heketi = FakeHeketi()
        var request = createRequest()
        request.capacityRange.requiredBytes = required
        request.capacityRange.limitBytes = limit
        let response = try await makeService(heketi).createVolume(request, context: context())
        #expect(response.volume.capacityBytes == Int64(expected) * gib)
    }

    @Test func aLimitBelowAWholeGiBIsOutOfRange() async {
        var request = createRequest()
        request.capacityRange.requiredBytes = 1
        request.capacityRange.limitBytes = gib / 2
        let error = await csiError { _ = try await makeService(FakeHeketi()).createVolume(request, context: context()) }
        #expect(error?.code == .outOfRange)
    }

    @Test func requiredFieldsAndCapabilities() async {
        let service = makeService(FakeHeketi())
        var noName = createRequest()
        noName.name = ""
        #expect(
            await csiError { _ = try await service.createVolume(noName, context: context()) }?.code == .invalidArgument)
        var noCapabilities = createRequest()
        noCapabilities.volumeCapabilities = []
        #expect(
            await csiError { _ = try await service.createVolume(noCapabilities, context: context()) }?.code
                == .invalidArgument)
        var block = createRequest()
        block.volumeCapabilities[0].block = Csi_V1_VolumeCapability.BlockVolume()
        let blockError = await csiError { _ = try await service.createVolume(block, context: context()) }
        #expect(blockError?.code == .invalidArgument && blockError?.message.contains("block access") == true)
        var xfs = createRequest()
        xfs.volumeCapabilities[0].mount.fsType = "xfs"
        #expect(
            await csiError { _ = try await service.createVolume(xfs, context: context()) }?.code == .invalidArgument)
        var snapshot = createRequest()
        snapshot.volumeContentSource.snapshot.snapshotID = "s"
        #expect(await csiError { _ = try await service.createVolume(snapshot, context: context()) }?.code == .notFound)
        var noKind = createRequest()
        noKind.volumeContentSource = Csi_V1_VolumeContentSource()
        #expect(
            await csiError { _ = try await service.createVolume(noKind, context: context()) }?.code == .invalidArgument)
    }
}

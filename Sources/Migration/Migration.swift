import CSICore
import Controller
import Heketi
import Node

/// The migration of the in-tree GlusterFS PVs in a Kubernetes List: for each selected claim,
/// either everything its glusterfs-csi PV and recreated claim need, or why it is refused.
///
/// docs/migration.md is the authority: this does its steps 4 and 6 (collect the values, write
/// the PV and claim) and checks what the manual steps leave to the reader, refusing a PV when
/// applying the result would not give the claim its data back.
public struct Migration: Sendable {
    /// The options it was made with.
    public let options: MigrationOptions
    /// How many PVs with `spec.glusterfs` the input has, selected or not.
    public private(set) var inTreeCount = 0
    /// The claims to migrate, by namespace and name.
    public private(set) var claims: [ClaimMigration] = []
    /// The selected PVs that are not migrated, by PV name.
    public private(set) var refusals: [Refusal] = []
    /// `--claim` entries that no in-tree PV in the input is bound to.
    public private(set) var unmatchedClaims: [ObjectKey] = []
    /// The StorageClasses of the migrated claims that are not yet this driver's (in-tree, another
    /// provisioner's, or not in the input), by name, with their claims: docs/migration.md step 1.
    public private(set) var classesToReplace: [(name: String, state: ClaimMigration.ClassState, claims: [ObjectKey])] =
        []

    /// Whether anything selected was not migrated: the exit status says so.
    public var hasRefusals: Bool { !refusals.isEmpty || !unmatchedClaims.isEmpty }

    /// Reads `inputs` and decides every selected in-tree PV. Throws only when an input cannot be
    /// read at all.
    public init(inputs: [MigrationInput], options: MigrationOptions) throws(MigrationInputError) {
        self.options = options
        let objects = try KubernetesObjects(inputs: inputs)
        var volumes: [InTreeVolume] = []
        for name in objects.volumes.keys.sorted() {
            do {
                guard let volume = try InTreeVolume(name: name, object: objects.volumes[name]!) else { continue }
                volumes.append(volume)
            } catch {
                inTreeCount += 1
                if options.selector.isEmpty {
                    refusals.append(
                        Refusal(volumeName: name, claim: nil, reasons: ["cannot read the PV: \(error.reason)"]))
                }
            }
        }
        inTreeCount += volumes.count
        let context = Context(objects: objects, volumes: volumes, options: options)
        var matched: Set<ObjectKey> = []
        for volume in volumes {
            if let claim = volume.claim {
                let labels = try? objects.claims[claim].map { (object) throws(HeketiWireError) in
                    try ClaimObject(object).labels
                }
                guard options.selector.selects(claim, labels: labels) else { continue }
                matched.insert(claim)
            } else if !options.selector.isEmpty {
                continue
            }
            switch context.migrate(volume) {
            case .success(let migration): claims.append(migration)
            case .failure(let refusal): refusals.append(refusal)
            }
        }
        claims.sort { $0.claim < $1.claim }
        refusals.sort { $0.volumeName < $1.volumeName }
        unmatchedClaims = options.selector.claims.subtracting(matched).sorted()
        var classes: [String: (state: ClaimMigration.ClassState, claims: [ObjectKey])] = [:]
        for claim in claims where claim.classState != .csi {
            classes[claim.storageClassName, default: (claim.classState, [])].claims.append(claim.claim)
        }
        classesToReplace = classes.keys.sorted().map { ($0, classes[$0]!.state, classes[$0]!.claims) }
    }
}

/// What deciding one PV needs from the whole input.
private struct Context {
    enum Outcome {
        case success(ClaimMigration)
        case failure(Refusal)
    }

    let objects: KubernetesObjects
    let options: MigrationOptions
    /// Heketi volume ID → the in-tree PVs that name it.
    let inTreeUsers: [String: [String]]
    /// Heketi volume ID → this driver's PVs of it (a migration applied before).
    let csiUsers: [String: [String]]
    /// Endpoints object → the in-tree PVs that use it.
    let endpointsUsers: [ObjectKey: [String]]

    init(objects: KubernetesObjects, volumes: [InTreeVolume], options: MigrationOptions) {
        self.objects = objects
        self.options = options
        var inTreeUsers: [String: [String]] = [:]
        var csiUsers: [String: [String]] = [:]
        var endpointsUsers: [ObjectKey: [String]] = [:]
        for volume in volumes {
            if let id = volume.annotations[InTreeVolume.heketiVolumeIDAnnotation] {
                inTreeUsers[id, default: []].append(volume.name)
            }
            if let endpoints = volume.endpoints {
                endpointsUsers[endpoints, default: []].append(volume.name)
            }
        }
        for name in objects.volumes.keys.sorted() {
            guard let csi = try? objects.volumes[name]!.object("spec")?.object("csi"),
                (try? csi.string("driver")) == options.driverName,
                let handle = try? csi.string("volumeHandle"), let id = VolumeID(parsing: handle)
            else { continue }
            csiUsers[id.heketiID, default: []].append(name)
        }
        self.inTreeUsers = inTreeUsers
        self.csiUsers = csiUsers
        self.endpointsUsers = endpointsUsers
    }

    func migrate(_ volume: InTreeVolume) -> Outcome {
        var reasons: [String] = []
        func refuse(_ reason: String) { reasons.append(reason) }

        // The Heketi volume: without its ID the volume handle cannot name it.
        let heketiID = volume.annotations[InTreeVolume.heketiVolumeIDAnnotation]
        if let heketiID {
            if VolumeID(parsing: "v1:\(heketiID):") == nil {
                refuse(
                    "annotation \(InTreeVolume.heketiVolumeIDAnnotation) is '\(printable(heketiID))', not a Heketi "
                        + "volume ID (32 lower-case hex digits): check it with `heketi-cli volume list`")
            } else {
                if let others = inTreeUsers[heketiID]?.filter({ $0 != volume.name }), !others.isEmpty {
                    refuse(
                        "Heketi volume \(heketiID) is also the volume of in-tree PV \(others.joined(separator: ", ")): "
                            + "two PVs of one volume would let deleting either delete the other's data; keep one")
                }
                if let existing = csiUsers[heketiID] {
                    refuse(
                        "Heketi volume \(heketiID) already has the \(options.driverName) PV "
                            + "\(existing.joined(separator: ", ")) (migrated before?): a second PV of it would let "
                            + "deleting either delete the other's data; bind the claim to that PV, or delete it")
                }
            }
        } else {
            refuse(
                "no annotation \(InTreeVolume.heketiVolumeIDAnnotation): the in-tree provisioner did not create "
                    + "this PV, so no Heketi volume is known; write a static PV for its Gluster volume by hand "
                    + "(docs/volume-id.md, Static PVs)")
        }

        // The claim: bound to this PV, so that recreating it gives the same workload its data.
        var claimObject: ClaimObject?
        if volume.phase != "Bound" {
            let state = volume.phase.map { "is \($0)" } ?? "has no status.phase"
            refuse(
                "the PV \(state), not Bound: only a claim bound to it can be moved to the new PV; bind it first, "
                    + "or write its CSI PV by hand (docs/volume-id.md)")
        } else if let claim = volume.claim {
            if let object = objects.claims[claim] {
                do {
                    let read = try ClaimObject(object)
                    claimObject = read
                    reasons += claimProblems(read, claim: claim, volume: volume)
                } catch {
                    refuse("cannot read claim \(claim): \(error.reason)")
                }
            } else {
                refuse(
                    "claim \(claim) is not in the input: include persistentvolumeclaims "
                        + "(kubectl get pv,pvc,endpoints,storageclass -A -o json)")
            }
        } else {
            refuse("the PV is Bound but has no spec.claimRef; bind it to its claim first")
        }

        if let mode = volume.volumeMode, mode != "Filesystem" {
            refuse("spec.volumeMode is \(mode): GlusterFS volumes are file systems; only Filesystem PVs migrate")
        }
        if let capacity = volume.capacity {
            if Quantity.value(capacity) == nil { refuse("spec.capacity.storage '\(capacity)' is not a quantity") }
        } else {
            refuse("no spec.capacity.storage")
        }

        // The GID: kept, so pods keep their supplemental group.
        var gid: UInt32?
        if let text = volume.annotations[InTreeVolume.gidAnnotation] {
            if let value = UInt32(text), value != UInt32.max {
                gid = value > 0 ? value : nil
            } else {
                refuse(
                    "annotation \(InTreeVolume.gidAnnotation) is '\(printable(text))', not a group ID (0 to "
                        + "4294967294); correct it (`kubectl annotate pv \(volume.name) --overwrite ...`)")
            }
        }

        // The hosts: the Endpoints object the in-tree plugin mounted from.
        var hosts: [String] = []
        let endpoints = volume.endpoints
        if let endpoints {
            if let object = objects.endpoints[endpoints] {
                do {
                    hosts = try endpointAddresses(object)
                    if hosts.isEmpty {
                        refuse(
                            "Endpoints \(endpoints) (spec.glusterfs.endpoints) lists no addresses: add the Gluster "
                                + "servers' IP addresses to it (they become the volume's glusterHosts)")
                    }
                } catch {
                    refuse("cannot read Endpoints \(endpoints): \(error.reason)")
                }
            } else {
                refuse(
                    "Endpoints \(endpoints) (spec.glusterfs.endpoints) is not in the input: its addresses are the "
                        + "volume's storage hosts; include endpoints in the input (kubectl get "
                        + "pv,pvc,endpoints,storageclass -A -o json), or recreate it with the Gluster servers' "
                        + "addresses")
            }
        } else if volume.endpointsName == nil {
            refuse("no spec.glusterfs.endpoints: the storage hosts are unknown")
        }
        if volume.path == nil { refuse("no spec.glusterfs.path: the Gluster volume name is unknown") }

        // Which Heketi: the class's resturl, else --resturl.
        let className = volume.storageClassName ?? ""
        var classState = ClaimMigration.ClassState.missing
        var location = StorageClassLocation?.none
        var classUnreadable = false
        if let object = objects.classes[className], !className.isEmpty {
            classUnreadable = true
            do {
                let read = try ClassObject(object)
                classState =
                    switch read.provisioner {
                    case "kubernetes.io/glusterfs": .inTree
                    case options.driverName: .csi
                    default: .other(read.provisioner ?? "")
                    }
                location = try StorageClassLocation(parameters: read.parameters)
                classUnreadable = false
            } catch let error as CSIError {
                refuse("StorageClass \(className): \(error.message)")
            } catch let error as HeketiWireError {
                refuse("cannot read StorageClass \(className): \(error.reason)")
            } catch {
                refuse("StorageClass \(className): \(error)")
            }
        }
        if className.isEmpty {
            refuse(
                "the PV has no storageClassName: the in-tree provisioner always set one, so this PV was written "
                    + "by hand; write its CSI PV by hand too (docs/volume-id.md)")
        }
        var heketiURL: String?
        var urlSource = ClaimMigration.URLSource.storageClass
        if let url = location?.restURL {
            heketiURL = url
        } else if let url = options.restURL {
            heketiURL = url
            urlSource = classState == .missing ? .optionClassMissing : .optionClassWithoutURL
        } else if !className.isEmpty && !classUnreadable {
            refuse(
                classState == .missing
                    ? "StorageClass \(className) is not in the input, so its resturl is unknown: include "
                        + "storageclasses in the input, or give the Heketi URL with --resturl"
                    : "StorageClass \(className) has no resturl: give the Heketi URL with --resturl")
        }
        if let heketiID, let heketiURL, VolumeID(parsing: "v1:\(heketiID):") != nil {
            do {
                _ = try VolumeID(heketiID: heketiID, heketiURL: heketiURL)
            } catch {
                refuse(
                    urlSource == .storageClass
                        ? "StorageClass \(className): \(error.message) (recreate the class with a shorter resturl, "
                            + "docs/migration.md step 1)"
                        : "--resturl: \(error.message)")
            }
        }
        let clusterID = location.flatMap { $0.clusterIDs.count == 1 ? $0.clusterIDs[0] : nil }

        // Mount options: the driver's own are dropped, the rest must pass the node's allow-list.
        let driverSet = ["auto_unmount", "log-file", "backup-volfile-servers", "backupvolfile-server"]
        var kept: [String] = []
        var dropped: [String] = []
        for option in volume.mountOptions {
            let name = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
            if driverSet.contains(name) { dropped.append(option) } else { kept.append(option) }
        }
        let readOnlyModes = !volume.accessModes.isEmpty && volume.accessModes.allSatisfy { $0 == "ReadOnlyMany" }
        do {
            _ = try GlusterMountOptions(mountFlags: kept, readOnlyAccessMode: readOnlyModes)
        } catch {
            refuse(
                "spec.mountOptions: \(error.message) (`kubectl patch pv \(volume.name)` to change the PV's "
                    + "mountOptions, then read the input again)")
        }

        guard reasons.isEmpty, let heketiID, let heketiURL, let claim = volume.claim, let claimObject,
            let endpoints, let path = volume.path, let capacity = volume.capacity,
            let request = claimObject.request
        else {
            return .failure(Refusal(volumeName: volume.name, claim: volume.claim, reasons: reasons))
        }
        let migration = ClaimMigration(
            claim: claim, volumeName: volume.name, heketiVolumeID: heketiID, heketiURL: heketiURL,
            urlSource: urlSource, heketiClusterID: clusterID, glusterVolume: path, hosts: hosts,
            endpoints: endpoints, endpointsUsers: (endpointsUsers[endpoints] ?? []).sorted(), gid: gid,
            capacity: capacity, accessModes: volume.accessModes, storageClassName: className,
            classState: classState, mountOptions: kept, droppedMountOptions: dropped,
            oldReclaimPolicy: volume.reclaimPolicy ?? "Delete", readOnly: volume.readOnly,
            claimLabels: claimObject.labels,
            claimAnnotations: claimObject.annotations.filter { !ClaimObject.isBindingAnnotation($0.key) },
            droppedClaimAnnotations: claimObject.annotations.keys.filter(ClaimObject.isBindingAnnotation).sorted(),
            oldClaimStorageClassName: claimObject.storageClassName == className
                ? nil : claimObject.storageClassName ?? "",
            claimAccessModes: claimObject.accessModes.isEmpty ? volume.accessModes : claimObject.accessModes,
            claimRequest: request)
        // The node's own check of what it will be given: a PV it would refuse is not written.
        do {
            _ = try GlusterVolumeSource(volumeContext: migration.volumeContext)
        } catch {
            return .failure(
                Refusal(
                    volumeName: volume.name, claim: claim,
                    reasons: ["the node would refuse the volume context: \(error.message)"]))
        }
        return .success(migration)
    }

    /// Why recreating `claim` would not bind it to the new PV with the same data.
    private func claimProblems(_ object: ClaimObject, claim: ObjectKey, volume: InTreeVolume) -> [String] {
        var problems: [String] = []
        if object.volumeName != volume.name {
            problems.append(
                "claim \(claim) is bound to "
                    + (object.volumeName.map { "PV \($0)" } ?? "no PV") + " (spec.volumeName), not to this PV: "
                    + "the PV's claimRef is stale; migrate the PV the claim names")
        }
        if let uid = object.uid, let claimUID = volume.claimUID, uid != claimUID {
            problems.append(
                "claim \(claim) has UID \(uid), the PV was bound to UID \(claimUID): the claim was deleted and "
                    + "created again since; bind them again first")
        }
        if object.phase != "Bound" {
            problems.append("claim \(claim) is \(object.phase ?? "without status.phase"), not Bound")
        }
        if let mode = object.volumeMode, mode != "Filesystem" {
            problems.append("claim \(claim) has volumeMode \(mode); only Filesystem claims migrate")
        }
        if let request = object.request {
            if let requested = Quantity.value(request) {
                if let capacity = volume.capacity, let size = Quantity.value(capacity), requested > size {
                    problems.append(
                        "claim \(claim) requests \(request), more than the PV's capacity \(capacity) (an expansion "
                            + "that did not finish): the recreated claim would not bind; set the PV's "
                            + "spec.capacity.storage to the Heketi volume's size (`heketi-cli volume info`) first")
                }
            } else {
                problems.append("claim \(claim): spec.resources.requests.storage '\(request)' is not a quantity")
            }
        } else {
            problems.append("claim \(claim) has no spec.resources.requests.storage")
        }
        return problems
    }
}

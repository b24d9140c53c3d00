extension Migration {
    /// The plan for standard error: what is refused and why, then per claim what changes and the
    /// steps of docs/migration.md with the commands that do them, in order.
    ///
    /// `inputNames` are the input files as given on the command line (empty for standard input):
    /// step 6 runs this command again on them for one claim, after its old objects are deleted.
    public func plan(inputNames: [String]) -> String {
        let inputs = inputNames.isEmpty ? ["in-tree.json"] : inputNames
        var lines: [String] = []
        lines.append(summary)
        if claims.isEmpty && !hasRefusals {
            return lines.joined(separator: "\n") + "\n"
        }
        if !claims.isEmpty {
            let kept = inputs.joined(separator: " ")
            if inputNames.isEmpty {
                lines.append(
                    "The input came from standard input: save it first (kubectl get pv,pvc,endpoints,storageclass "
                        + "-A -o json > in-tree.json). Step 6 reads it again once the claim's old objects are "
                        + "deleted, and it is the backup of the old PVs and claims.")
            } else {
                lines.append(
                    "Keep \(kept): step 6 reads it again once the claim's old objects are deleted, and it is the "
                        + "backup of the old PVs and claims.")
            }
        }
        if !classesToReplace.isEmpty {
            lines.append("")
            lines.append(
                "Step 1, once per StorageClass, before its claims: (re)create it with provisioner "
                    + "\(options.driverName) under the same name, as docs/migration.md step 1 says:")
            for entry in classesToReplace {
                let state =
                    switch entry.state {
                    case .inTree: "now kubernetes.io/glusterfs"
                    case .missing: "not in the input"
                    case .other(let provisioner): "now \(provisioner.isEmpty ? "without a provisioner" : provisioner)"
                    case .csi: options.driverName
                    }
                lines.append(
                    "  \(entry.name) (\(state); claims \(entry.claims.map(\.description).joined(separator: ", ")))")
            }
        }
        if hasRefusals {
            lines.append("")
            lines.append("Refused: nothing is written for these; fix what is said and run again.")
            for refusal in refusals {
                let claim = refusal.claim.map { " (claim \($0))" } ?? ""
                lines.append("  PV \(refusal.volumeName)\(claim):")
                lines += refusal.reasons.map { "    - " + $0 }
            }
            for claim in unmatchedClaims {
                lines.append("  --claim \(claim): no in-tree GlusterFS PV in the input is bound to it")
            }
        }
        for claim in claims {
            lines.append("")
            lines += plan(for: claim, inputs: inputs)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private var summary: String {
        let check = options.checkOnly ? " (--check: no manifests written)" : ""
        if inTreeCount == 0 {
            return
                "glusterfs-csi migrate: no in-tree GlusterFS PVs (spec.glusterfs) in the input; nothing to do\(check)."
        }
        let selected = claims.count + refusals.count
        var parts = ["\(count(inTreeCount, "in-tree GlusterFS PV")) in the input"]
        if !options.selector.isEmpty { parts.append("\(selected) selected") }
        parts.append("\(count(claims.count, "claim")) to migrate")
        parts.append("\(count(refusals.count, "PV")) refused")
        if !unmatchedClaims.isEmpty { parts.append("\(count(unmatchedClaims.count, "--claim")) not found") }
        return "glusterfs-csi migrate: " + parts.joined(separator: ", ") + check + "."
    }

    private func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    private func plan(for claim: ClaimMigration, inputs: [String]) -> [String] {
        let pv = claim.volumeName
        let namespace = claim.claim.namespace
        let name = claim.claim.name
        let cluster = claim.heketiClusterID.map { " in cluster \($0)" } ?? ""
        let source =
            switch claim.urlSource {
            case .storageClass: "the resturl of StorageClass \(claim.storageClassName)"
            case .optionClassMissing: "--resturl: StorageClass \(claim.storageClassName) is not in the input"
            case .optionClassWithoutURL: "--resturl: StorageClass \(claim.storageClassName) has no resturl"
            }
        var lines = [
            "Claim \(claim.claim), PV \(pv)",
            "  Heketi volume \(claim.heketiVolumeID)\(cluster) at \(claim.heketiURL) (\(source))",
            "  Gluster volume \(claim.glusterVolume) on \(claim.hosts.joined(separator: ",")) (Endpoints "
                + "\(claim.endpoints))",
            "  Changes:",
            "    - the PV: spec.glusterfs becomes spec.csi of \(options.driverName), same name, "
                + "\(claim.capacity), \(claim.accessModes.joined(separator: ",")), class \(claim.storageClassName)",
        ]
        if let gid = claim.gid {
            lines.append(
                "    - the PV keeps GID \(gid) (annotation \(InTreeVolume.gidAnnotation), volumeAttributes.gid)")
        }
        if claim.oldReclaimPolicy != "Retain" {
            lines.append("    - the PV's reclaim policy: \(claim.oldReclaimPolicy) -> Retain, until step 8")
        }
        if !claim.droppedMountOptions.isEmpty {
            lines.append(
                "    - the PV's mountOptions: \(claim.droppedMountOptions.joined(separator: ", ")) dropped (the "
                    + "driver sets them itself)")
        }
        lines.append(
            "    - the claim: deleted and created again with the same name, labels and spec, bound by "
                + "spec.volumeName (it gets a new UID)")
        if let old = claim.oldClaimStorageClassName {
            let was =
                !old.isEmpty
                ? "was \(old)"
                : claim.droppedClaimAnnotations.contains("volume.beta.kubernetes.io/storage-class")
                    ? "was named by annotation volume.beta.kubernetes.io/storage-class" : "was empty"
            lines.append(
                "    - the claim's spec.storageClassName becomes \(claim.storageClassName), the PV's (it \(was); "
                    + "binding needs them equal)")
        }
        if !claim.droppedClaimAnnotations.isEmpty {
            lines.append(
                "    - the claim's annotations of the old binding dropped: "
                    + claim.droppedClaimAnnotations.joined(separator: ", "))
        }
        lines.append("  Steps (docs/migration.md):")
        lines.append("    2. stop every pod that uses the claim (scale its Deployment or StatefulSet to 0)")
        if claim.oldReclaimPolicy == "Retain" {
            lines.append("    3. nothing to do: the PV is Retain already")
        } else {
            lines.append(
                "    3. kubectl patch pv \(pv) -p '{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"}}'")
        }
        lines.append("    4. done: the values above, checked")
        lines.append("    5. kubectl -n \(namespace) delete pvc \(name)")
        lines.append("       kubectl delete pv \(pv)")
        lines.append("    6. \(command(for: claim, inputs: inputs)) | kubectl apply -f -")
        lines.append("       kubectl -n \(namespace) get pvc \(name)    # Bound, VOLUME \(pv)")
        lines.append("    7. start the workload again; it finds its files")
        if claim.oldReclaimPolicy == "Delete" {
            lines.append("    8. optional, once the workload is checked: let the claim own the Heketi volume again")
            lines.append(
                "       kubectl annotate pv \(pv) pv.kubernetes.io/provisioned-by=\(options.driverName) "
                    + "volume.kubernetes.io/provisioner-deletion-secret-name=\(options.secretName) "
                    + "volume.kubernetes.io/provisioner-deletion-secret-namespace=\(options.secretNamespace)")
            lines.append(
                "       kubectl patch pv \(pv) -p '{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Delete\"}}'")
        } else {
            lines.append("    8. nothing to do: the in-tree PV was \(claim.oldReclaimPolicy), the new one stays Retain")
        }
        let others = claim.endpointsUsers.filter { $0 != pv }
        if others.isEmpty {
            lines.append(
                "    9. kubectl -n \(claim.endpoints.namespace) delete service,endpoints \(claim.endpoints.name) "
                    + "--ignore-not-found")
        } else {
            let users =
                others.count == 1
                ? "PV \(others[0]) no longer uses" : "PVs \(others.joined(separator: ", ")) no longer use"
            lines.append("    9. keep Endpoints \(claim.endpoints) until \(users) it")
        }
        return lines
    }

    /// This command again, for one claim, with the options that shape its output.
    private func command(for claim: ClaimMigration, inputs: [String]) -> String {
        var words = ["glusterfs-csi", "migrate", "--claim", claim.claim.description]
        if claim.urlSource != .storageClass, let url = options.restURL { words += ["--resturl", url] }
        if options.secretName != MigrationOptions.defaultSecretName { words += ["--secret-name", options.secretName] }
        if options.secretNamespace != MigrationOptions.defaultSecretNamespace {
            words += ["--secret-namespace", options.secretNamespace]
        }
        if options.driverName != MigrationOptions().driverName { words += ["--driver-name", options.driverName] }
        // One input on standard input, so the command also works through `kubectl exec -i` into the
        // driver's pod (docs/migration.md), where the file is not.
        guard inputs.count > 1 else {
            return words.map(Self.shellQuoted).joined(separator: " ") + " < " + Self.shellQuoted(inputs[0])
        }
        return (words + inputs).map(Self.shellQuoted).joined(separator: " ")
    }

    /// `word` as one shell word: as it is when that is safe, else in single quotes.
    static func shellQuoted(_ word: String) -> String {
        let safe =
            !word.isEmpty
            && word.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || "@%_+=:,./-".utf8.contains(byte)
            }
        return safe ? word : "'" + word.replacing("'", with: "'\\''") + "'"
    }
}

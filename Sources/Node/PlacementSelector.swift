import Logging
import ProcessSpawn

#if canImport(Glibc)
import Glibc
#endif

/// The placement a node plugin runs with, chosen once at start-up, and why.
public struct PlacementChoice: Sendable {
    /// The placement to use.
    public let placement: any ClientPlacement
    /// What `--mount-placement` asked for.
    public let requested: MountPlacement
    /// Why each better placement was not used (empty when the first choice worked).
    public let reasons: [String]

    /// One start-up line that says which placement was chosen: a warning whenever it is not the
    /// best one (systemd) or not what was asked for, with the causes; for `none` also what a
    /// restart does to the node's mounts and what to change.
    public func log(to logger: Logger) {
        var metadata: Logger.Metadata = [
            "placement": "\(placement.kind.rawValue)", "requested": "\(requested.rawValue)",
            "location": "\(placement.location)",
        ]
        if !reasons.isEmpty { metadata["reason"] = "\(reasons.joined(separator: "; "))" }
        if placement.kind == .none {
            metadata["consequence"] = .string(
                "a restart of this node plugin kills the glusterfs client of every volume staged on this node, and "
                    + "their pods get 'Transport endpoint is not connected' until they are recreated")
            metadata["fix"] = .string(
                "run the plugin with hostPID: true and the host's /run/systemd (systemd placement) or /sys/fs/cgroup "
                    + "mounted at --cgroup-root (cgroup placement), as deploy/base/node.yaml does")
        }
        let degraded = placement.kind != .systemd || !reasons.isEmpty
        logger.log(level: degraded ? .warning : .notice, "mount placement chosen", metadata: metadata)
    }
}

/// Resolves `--mount-placement` at start-up by trying each placement for real.
public enum PlacementSelector {
    /// The placement to use for `requested`: `auto` tries systemd, then cgroup, then settles for
    /// none; `systemd` and `cgroup` fall back to none when they do not work here (the plugin still
    /// serves — its mounts just do not survive it — and the start-up line says why).
    ///
    /// - Parameters:
    ///   - requested: the flag's value.
    ///   - cgroupRoot: `--cgroup-root`.
    ///   - connectSystemd: a connection to the host's systemd that shares this process's PID
    ///     namespace, or why there is none.
    public static func choose(
        requested: MountPlacement, cgroupRoot: String,
        connectSystemd: () -> Result<any SystemdScopes, PlacementError>
    ) -> PlacementChoice {
        let candidates: [MountPlacement] =
            switch requested {
            case .auto: [.systemd, .cgroup]
            case .systemd: [.systemd]
            case .cgroup: [.cgroup]
            case .none: []
            }
        var reasons: [String] = []
        for candidate in candidates {
            let attempt: Result<any ClientPlacement, PlacementError> =
                candidate == .systemd
                ? systemd(connectSystemd, cgroupRoot: cgroupRoot) : cgroup(root: cgroupRoot)
            switch attempt {
            case .success(let placement):
                return PlacementChoice(placement: placement, requested: requested, reasons: reasons)
            case .failure(let error):
                reasons.append("\(candidate.rawValue): \(error.description)")
            }
        }
        return PlacementChoice(placement: NoPlacement(), requested: requested, reasons: reasons)
    }

    private static func systemd(
        _ connect: () -> Result<any SystemdScopes, PlacementError>, cgroupRoot: String
    ) -> Result<any ClientPlacement, PlacementError> {
        switch connect() {
        case .success(let scopes):
            let placement = SystemdScopePlacement(systemd: scopes, cgroupRoot: cgroupRoot)
            // Where the host's v1 tree is at hand the helper leaves every cgroup of the plugin's
            // (see SystemdScopePlacement); otherwise that it is in the scope (adopt checks it) is
            // all that can be checked.
            let leaves = !placement.v1Hierarchies.isEmpty || FileIO.size(cgroupRoot + "/cgroup.controllers") != nil
            if let problem = trial(placement, mustLeaveOwnCgroups: leaves) { return .failure(problem) }
            return .success(placement)
        case .failure(let error):
            return .failure(error)
        }
    }

    private static func cgroup(root: String) -> Result<any ClientPlacement, PlacementError> {
        if let reason = Namespaces.privatePIDNamespaceReason() { return .failure(PlacementError(reason)) }
        do throws(PlacementError) {
            let placement = try CgroupPlacement(root: root)
            if let problem = trial(placement, mustLeaveOwnCgroups: true) { return .failure(problem) }
            return .success(placement)
        } catch {
            return .failure(error)
        }
    }

    /// Places a child that never execs into a trial unit, checks where it landed, and removes it
    /// all again: the whole path a mount takes, minus the mount. Nil when it worked.
    static func trial(_ placement: any ClientPlacement, mustLeaveOwnCgroups: Bool) -> PlacementError? {
        let unit = ClientUnit(volumeID: "placement trial", stagingPath: "process \(getpid())")
        defer { try? placement.remove(unit, grace: .seconds(1)) }
        do {
            var spawn = try placement.prepare(unit)
            let adoptsAtGate = spawn.gated
            spawn.gated = true  // the trial child waits at its gate and is abandoned there
            let child = try ChildProcess("/bin/true", [], environment: [], placement: spawn)
            defer { child.abandon() }
            if adoptsAtGate { try placement.adopt(child.pid, into: unit) }
            guard mustLeaveOwnCgroups else { return nil }
            guard let own = CgroupMembership.of("self"), let placed = CgroupMembership.of("\(child.pid)") else {
                return PlacementError("cannot read /proc/<pid>/cgroup to check where a placed process lands")
            }
            let inside = placed.hierarchiesInside(own, rootIsNamespaced: Namespaces.cgroupNamespaceIsPrivate)
            guard inside.isEmpty else {
                return PlacementError(
                    "a process placed in \(placement.location) is still inside the node plugin's own cgroup "
                        + "(hierarchies \(inside.joined(separator: ", "))), so a restart would kill it; mount the "
                        + "host's /sys/fs/cgroup, not the container's, at --cgroup-root")
            }
            return nil
        } catch let error as PlacementError {
            return error
        } catch {
            return PlacementError("\(error)")
        }
    }
}

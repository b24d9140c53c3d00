import CSICore

// The one place a Heketi failure becomes a CSI status. Each message keeps the HeketiError's text
// (what Heketi said, in short) and adds what to do about it.

extension HeketiError: CSIErrorConvertible {
    /// This failure as the CSI error an RPC should end with.
    ///
    /// - invalidRequest → INVALID_ARGUMENT: Heketi refused the request's content.
    /// - unauthorized → UNAUTHENTICATED: the key or the user (JWT issuer) is wrong.
    /// - notFound → NOT_FOUND (DeleteVolume treats it as success before getting here).
    /// - noSpace → RESOURCE_EXHAUSTED: the pool may grow, or a smaller request may fit.
    /// - tooManyBricks → OUT_OF_RANGE, not RESOURCE_EXHAUSTED: every Heketi expand adds a brick
    ///   set, and this volume has reached Heketi's per-volume brick limit. No amount of free space
    ///   or retrying helps; the size asked for is beyond what this volume can reach, which is what
    ///   CSI's OUT_OF_RANGE says for a capacity range the plugin cannot honour.
    /// - nameInUse → ABORTED: the controller adopts an existing volume before this; what is left
    ///   is a name held by a pending or stale Heketi operation, which clears with time or cleanup.
    /// - operationPending → ABORTED: another operation on the same volume is still running.
    /// - throttled, unreachable, serverError, operationFailed → UNAVAILABLE: retrying later can
    ///   succeed (peers back up, Heketi restarted, load gone). Except a clone refused because the
    ///   bricks are not thin LVM → FAILED_PRECONDITION: no retry helps.
    /// - timedOut → DEADLINE_EXCEEDED.
    /// - clientUnusable → UNAVAILABLE, saying the fix is in the controller's image, not in Heketi.
    public var csiError: CSIError {
        switch self {
        case .invalidRequest(let message):
            return CSIError(
                .invalidArgument,
                "\(sentence(message)). Check the StorageClass parameters (volumetype, volumeoptions, clusterid, snapfactor, "
                    + "gidMin/gidMax) and the requested size")
        case .unauthorized(let message):
            return CSIError(
                .unauthenticated,
                "\(sentence(message)). Check the Heketi key in the provisioner secret (key 'key') and restuser")
        case .notFound(let message):
            return CSIError(.notFound, "\(sentence(message)). The volume may have been deleted in Heketi directly")
        case .noSpace(let message):
            return CSIError(
                .resourceExhausted,
                "Heketi has no space for this volume (\(message)). Add devices or nodes to the Heketi cluster, free "
                    + "space, or request less; a disperse D+R volume also needs D+R nodes")
        case .tooManyBricks(let message):
            return CSIError(
                .outOfRange,
                "Heketi cannot grow this volume further (\(message)): each expansion adds a brick set and the "
                    + "volume has reached Heketi's brick limit. Create a new, larger volume and copy the data; "
                    + "expand in fewer, larger steps in future")
        case .nameInUse(let message):
            return CSIError(
                .aborted,
                "The Heketi volume name is already in use (\(message)), most likely by a pending or stale Heketi "
                    + "operation. Retry later; if it persists, run Heketi's pending-operation cleanup "
                    + "(POST /operations/pending/cleanup)")
        case .operationPending(let message):
            return CSIError(.aborted, "\(sentence(message)). Retry when it has finished")
        case .throttled(let message):
            return CSIError(
                .unavailable,
                "\(sentence(message)). Retry later; if this persists, lower the controller's concurrent Heketi operations or "
                    + "raise Heketi's limit")
        case .clientUnusable(let message):
            return CSIError(
                .unavailable,
                "\(sentence(message)). This is a fault of the controller's installation, not of Heketi: fix the "
                    + "controller's image, then restart the controller")
        case .unreachable(let message):
            return CSIError(
                .unavailable,
                "\(sentence(message)). Check resturl, that Heketi is running and reachable from the controller (network "
                    + "policy, service), and for https the CA bundle")
        case .serverError(_, let message):
            return CSIError(.unavailable, "\(sentence(message)). Check Heketi's log; retry later")
        case .operationFailed(let message) where Self.saysBricksAreNotThin(message):
            return CSIError(
                .failedPrecondition,
                "\(sentence(message)). Heketi clones through a gluster snapshot, which needs bricks on thinly "
                    + "provisioned LVM: this volume's bricks are not, so it cannot be snapshotted, restored from or "
                    + "cloned; use a Heketi cluster whose devices hold thin pools")
        case .operationFailed(let message):
            return CSIError(
                .unavailable,
                "\(sentence(message)). Check that all gluster peers are connected ('gluster peer status') and Heketi's log; "
                    + "retry later")
        case .timedOut(let message):
            return CSIError(
                .deadlineExceeded, "\(sentence(message)). Retry; check Heketi's load and log if this persists")
        }
    }

    /// gluster's refusal to snapshot a volume on thick bricks ("Snapshot is supported only for thin
    /// provisioned LV"), as Heketi passes it on from a failed clone.
    static func saysBricksAreNotThin(_ message: String) -> Bool {
        let lower = message.lowercased()
        return lower.contains("thin provisioned") || lower.contains("thinly provisioned")
    }

    /// `message` without a trailing full stop, so that ". What to do" can follow it.
    private func sentence(_ message: String) -> String {
        var text = Substring(message)
        while let last = text.last, last == "." || last == " " { text = text.dropLast() }
        return String(text)
    }
}

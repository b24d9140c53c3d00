import CSICore

/// The paging of ListVolumes and ListSnapshots. A token is the offset of the next entry in a
/// stable order (by Heketi ID); one this driver did not issue, or one past the end, is ABORTED as
/// the spec says, so the CO lists again from the start.
struct ListPage {
    let offset: Int
    let maxEntries: Int
    private let token: String

    init(startingToken token: String, maxEntries: Int32) throws(CSIError) {
        guard maxEntries >= 0 else {
            throw CSIError(.invalidArgument, "max_entries must not be negative, got \(maxEntries)")
        }
        var offset = 0
        if !token.isEmpty {
            guard let parsed = Int(token), parsed >= 0 else {
                throw CSIError(
                    .aborted,
                    "starting_token '\(printable(token))' was not issued by this driver; list again from the start")
            }
            offset = parsed
        }
        self.offset = offset
        self.maxEntries = Int(maxEntries)
        self.token = token
    }

    /// The indices of this page among `count` entries, and the next page's token ("" at the end).
    func entries(of count: Int) throws(CSIError) -> (range: Range<Int>, nextToken: String) {
        guard offset <= count else {
            throw CSIError(
                .aborted,
                "starting_token '\(printable(token))' is past the end of the list; list again from the start")
        }
        let end = maxEntries == 0 ? count : min(count, offset + maxEntries)
        return (offset..<end, end < count ? String(end) : "")
    }
}

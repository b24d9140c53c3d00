import Migration
import Testing

/// --namespace, --claim and --selector: only the claims they name are planned and written.
@Suite struct SelectorTests {
    static func claims(_ configure: (inout ClaimSelector) throws -> Void) throws -> [String] {
        var options = MigrationOptions()
        try configure(&options.selector)
        return try migration(["in-tree.json"], options).claims.map(\.claim.description)
    }

    @Test func everyClaimWithoutASelector() throws {
        #expect(try Self.claims { _ in } == ["default/legacy-data", "team-a/reports", "team-b/cache"])
    }

    @Test func namespaces() throws {
        #expect(try Self.claims { $0.namespaces = ["team-a"] } == ["team-a/reports"])
        #expect(
            try Self.claims { $0.namespaces = ["team-a", "default"] } == ["default/legacy-data", "team-a/reports"])
        #expect(try Self.claims { $0.namespaces = ["nowhere"] } == [])
    }

    @Test func claimsByName() throws {
        let key = try #require(ObjectKey(parsing: "team-b/cache"))
        #expect(try Self.claims { $0.claims = [key] } == ["team-b/cache"])
        // All selectors must match: a claim outside the namespaces is not taken.
        #expect(
            try Self.claims {
                $0.claims = [key]; $0.namespaces = ["default"]
            } == [])
    }

    @Test(arguments: [
        ("app=reports", ["team-a/reports"]),
        ("app==reports,tier=batch", ["team-a/reports"]),
        ("app!=reports", ["default/legacy-data", "team-b/cache"]),
        ("tier", ["team-a/reports"]),
        ("!tier", ["default/legacy-data", "team-b/cache"]),
        ("app=other", []),
    ])
    func labels(selector: String, expected: [String]) throws {
        #expect(try Self.claims { $0.labels = try LabelSelector(parsing: selector) } == expected)
    }

    @Test(arguments: ["app in (a,b)", "app=", "=x", "a b", "app=x,,", "app=a/b"])
    func unreadableLabelSelectors(selector: String) {
        if selector == "app=" {
            // An empty value is a value (the label is set to "").
            #expect((try? LabelSelector(parsing: selector)) != nil)
            return
        }
        #expect(throws: MigrationInputError.self) { try LabelSelector(parsing: selector) }
    }

    /// A --claim that no in-tree PV is bound to is reported, and the exit status says so.
    @Test func unknownClaimIsReported() throws {
        var options = MigrationOptions()
        options.selector.claims = [
            try #require(ObjectKey(parsing: "default/legacy-data")), try #require(ObjectKey(parsing: "default/typo")),
        ]
        let outcome = migrate(["in-tree.json"], options)
        #expect(outcome.status == MigrateOutcome.refusedStatus)
        #expect(
            outcome.standardError.contains(
                "  --claim default/typo: no in-tree GlusterFS PV in the input is bound to it"))
        #expect(
            outcome.standardError.hasPrefix(
                "glusterfs-csi migrate: 3 in-tree GlusterFS PVs in the input, 1 selected, 1 claim to migrate, 0 PVs "
                    + "refused, 1 --claim not found."))
        #expect(outcome.standardOutput.contains("name: legacy-data\n"))
        #expect(!outcome.standardOutput.contains("name: reports\n"))
    }

    /// Step 6 of the plan regenerates exactly this claim's part of the full output.
    @Test func stepSixRegeneratesTheClaimsPart() throws {
        let full = migrate(["in-tree.json"]).standardOutput
        for name in ["default/legacy-data", "team-a/reports", "team-b/cache"] {
            var options = MigrationOptions()
            options.selector.claims = [try #require(ObjectKey(parsing: name))]
            let one = migrate(["in-tree.json"], options)
            #expect(one.status == MigrateOutcome.migratedStatus)
            #expect(full.contains(one.standardOutput))
            #expect(one.standardOutput.hasPrefix("# \(name): "))
        }
    }

    @Test(arguments: ["default", "a/b/c", "/x", "x/", ""])
    func claimKeys(text: String) {
        #expect(ObjectKey(parsing: text) == nil)
    }
}

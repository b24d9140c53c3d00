import Migration
import Testing

@testable import Migration

/// How values are written (a YAML reader must read back exactly these strings) and what input is
/// refused as a whole.
@Suite struct YAMLAndInputTests {
    @Test(arguments: [
        ("10Gi", "10Gi"), ("ReadWriteMany", "ReadWriteMany"), ("pvc-4d7e0f6c", "pvc-4d7e0f6c"),
        ("glusterfs.csi.heketi.io", "glusterfs.csi.heketi.io"), ("vol_5c6f", "vol_5c6f"),
        ("40000", #""40000""#), ("1e3", #""1e3""#), ("0x1f", #""0x1f""#), ("0o17", #""0o17""#),
        ("1.5", #""1.5""#), ("2024-01-02", #""2024-01-02""#), ("5c6f2a3b9d0e4f1a", #""5c6f2a3b9d0e4f1a""#),
        ("1Ei", #""1Ei""#), ("yes", #""yes""#), ("On", #""On""#), ("null", #""null""#), ("y", #""y""#),
        ("", #""""#), ("-x", #""-x""#), (".inf", #"".inf""#), ("a: b", #""a: b""#), ("a#b", #""a#b""#),
        ("http://x:1", #""http://x:1""#), ("log-level=WARNING", #""log-level=WARNING""#),
        ("quote\"back\\slash", #""quote\"back\\slash""#), ("line\nbreak", #""line\nbreak""#),
        ("del\u{7F}c1\u{85}", #""del\u007Fc1\u0085""#), ("é", #""é""#),
    ])
    func scalars(text: String, written: String) {
        #expect(YAMLNode.scalar(text) == written)
    }

    @Test func documentLayout() {
        let node = YAMLNode.map([
            ("a", .string("x")), ("b", .map([("c", .list([.string("d"), .quoted("e")]))])), ("f", .map([])),
            ("g", .list([])), ("h", .bool(true)), ("i", .list([.map([("j", .string("k")), ("l", .string("m"))])])),
        ])
        #expect(
            node.document == """
                a: x
                b:
                  c:
                    - d
                    - "e"
                f: {}
                g: []
                h: true
                i:
                  - j: k
                    l: m

                """)
    }

    @Test(arguments: [
        ("not json", "x.json: not JSON: unexpected character at byte 0"),
        ("[]", "x.json: unexpected type at the body"),
        (#"{"apiVersion": "v1"}"#, "x.json: the object has no kind; expected a List from"),
        (#"{"kind": "List", "items": [{"apiVersion": "v1"}]}"#, "x.json: items[0] has no kind"),
        (
            #"{"kind": "List", "items": [{"kind": "PersistentVolume"}]}"#,
            "x.json: items[0] (PersistentVolume) has no metadata.name"
        ),
        (
            #"{"kind": "List", "items": [{"kind": "PersistentVolume", "metadata": {"name": 3}}]}"#,
            "x.json: unexpected type at items[0].metadata.name"
        ),
        (#"{"kind": "List", "items": "none"}"#, "x.json: unexpected type at items"),
        (
            #"{"kind": "List", "items": [{"kind": "Endpoints", "metadata": {"name": "e", "namespace": "n"}}, {"kind": "Endpoints", "metadata": {"name": "e", "namespace": "n"}}]}"#,
            "x.json: items[1]: Endpoints n/e appears twice in the input"
        ),
    ])
    func unreadableInputs(text: String, message: String) {
        let outcome = MigrateOutcome(
            inputs: [MigrationInput(name: "x.json", bytes: Array(text.utf8))], inputNames: ["x.json"],
            options: MigrationOptions())
        #expect(outcome.status == MigrateOutcome.inputErrorStatus)
        #expect(outcome.standardOutput.isEmpty)
        #expect(outcome.standardError.hasPrefix("glusterfs-csi migrate: " + message), "\(outcome.standardError)")
    }

    /// The same PV in two files is as ambiguous as twice in one.
    @Test func sameObjectInTwoInputs() {
        let outcome = migrate(["in-tree.json", "in-tree.json"])
        #expect(outcome.status == MigrateOutcome.inputErrorStatus)
        #expect(outcome.standardError.contains("appears twice in the input"))
    }

    /// An in-tree PV whose fields have the wrong types is refused on its own; the rest migrates.
    @Test func unreadablePVIsRefused() throws {
        let text = """
            {"kind": "List", "items": [
              {"kind": "PersistentVolume", "metadata": {"name": "pv-odd", "annotations": {"a": 1}},
               "spec": {"glusterfs": {"path": "vol_1", "endpoints": "e"}}, "status": {"phase": "Bound"}}]}
            """
        let migration = try Migration(
            inputs: [MigrationInput(name: "x.json", bytes: Array(text.utf8))], options: MigrationOptions())
        #expect(migration.refusals.map(\.volumeName) == ["pv-odd"])
        #expect(
            migration.refusals.first?.reasons == [
                "cannot read the PV: unexpected type at items[0].metadata.annotations[a]"
            ])
    }

    static let quantityValues: [(String, Double)] = [
        ("10Gi", 10_737_418_240), ("1536Mi", 1_610_612_736), ("5G", 5e9), ("1e3", 1000), ("1E3", 1000),
        ("0.5Ki", 512), (".5", 0.5), ("100m", 0.1), ("+2", 2), ("-1k", -1000), ("7", 7),
    ]

    @Test(arguments: quantityValues)
    func quantities(text: String, value: Double) {
        #expect(Quantity.value(text) == value)
    }

    @Test(arguments: ["", "Gi", "1.2.3", "1Gb", "1e", "1e+", "ten", "1 Gi", "."])
    func notQuantities(text: String) {
        #expect(Quantity.value(text) == nil)
    }

    @Test(arguments: [
        ("heketi-secret", true), ("a.b-c", true), ("Heketi", false), ("-a", false), ("a_b", false), ("", false),
    ])
    func secretNames(name: String, valid: Bool) {
        let accepted = (try? MigrationOptions.validateSecretName(name)) != nil
        #expect(accepted == valid)
    }
}

/// `text` with control characters shown as `?` and cut to 200 characters, for quoting user input
/// in an error message without letting it forge log lines.
public func printable(_ text: String) -> String {
    let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
    return cleaned.utf8.count <= 200 ? cleaned : String(cleaned.prefix(200)) + "…"
}

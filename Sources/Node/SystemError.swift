import Glibc

/// The C library's text for an `errno` value, e.g. "Transport endpoint is not connected".
func systemErrorDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}

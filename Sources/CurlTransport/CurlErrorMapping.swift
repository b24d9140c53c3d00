import CCurlShim
import CSICore

/// libcurl result codes → `HTTPTransportError`, in one place.
enum CurlErrorMapping {
    static func error(for code: CURLcode, detail: String, bodyOverflowed: Bool) -> HTTPTransportError {
        let reason = describe(code, detail: detail)
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .cannotConnect(reason)
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut(reason)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE, CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_ENGINE_NOTFOUND,
            CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_USE_SSL_FAILED, CURLE_SSL_CLIENTCERT:
            return .tls(reason)
        case CURLE_ABORTED_BY_CALLBACK:
            return .failed("the request was cancelled")
        case CURLE_WRITE_ERROR where bodyOverflowed:
            return .failed("the response body was larger than this client accepts")
        default:
            return .failed(reason)
        }
    }

    /// libcurl's generic text for the code plus its detail for this transfer (host, port, the
    /// TLS library's reason). Neither ever contains request headers.
    static func describe(_ code: CURLcode, detail: String) -> String {
        let generic = String(cString: ccurl_strerror(code))
        let trimmed = detail.trimmingTrailingNewlines()
        return trimmed.isEmpty || trimmed == generic ? generic : "\(generic): \(trimmed)"
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" || last == " " { text = text.dropLast() }
        return String(text)
    }
}

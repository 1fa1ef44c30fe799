//! What TLS puts on the wire, by name: record sizes, content types, alert levels and
//! descriptions. Below the engines and the session, which all use it.

/// The largest plaintext of one record (RFC 8446, 5.1).
pub(crate) const MAX_FRAGMENT: usize = 1 << 14;

/// The size of one full TLS record on the wire: 16 KiB of plaintext plus the largest
/// overhead a record may carry.
pub const MAX_RECORD_WIRE_SIZE: usize = MAX_FRAGMENT + 2048 + 5;

/// The name the TLS specifications (RFC 8446 and the IANA registry) give an alert, by its
/// code: `handshake_failure`, `unknown_ca`, or `alert 200` for one no specification names.
pub(crate) fn alert_name(code: u8) -> String {
    use rustls::AlertDescription as A;
    let name = match A::from(code) {
        A::CloseNotify => "close_notify",
        A::UnexpectedMessage => "unexpected_message",
        A::BadRecordMac => "bad_record_mac",
        A::DecryptionFailed => "decryption_failed",
        A::RecordOverflow => "record_overflow",
        A::DecompressionFailure => "decompression_failure",
        A::HandshakeFailure => "handshake_failure",
        A::NoCertificate => "no_certificate",
        A::BadCertificate => "bad_certificate",
        A::UnsupportedCertificate => "unsupported_certificate",
        A::CertificateRevoked => "certificate_revoked",
        A::CertificateExpired => "certificate_expired",
        A::CertificateUnknown => "certificate_unknown",
        A::IllegalParameter => "illegal_parameter",
        A::UnknownCA => "unknown_ca",
        A::AccessDenied => "access_denied",
        A::DecodeError => "decode_error",
        A::DecryptError => "decrypt_error",
        A::ExportRestriction => "export_restriction",
        A::ProtocolVersion => "protocol_version",
        A::InsufficientSecurity => "insufficient_security",
        A::InternalError => "internal_error",
        A::InappropriateFallback => "inappropriate_fallback",
        A::UserCanceled => "user_canceled",
        A::NoRenegotiation => "no_renegotiation",
        A::MissingExtension => "missing_extension",
        A::UnsupportedExtension => "unsupported_extension",
        A::CertificateUnobtainable => "certificate_unobtainable",
        A::UnrecognisedName => "unrecognized_name",
        A::BadCertificateStatusResponse => "bad_certificate_status_response",
        A::BadCertificateHashValue => "bad_certificate_hash_value",
        A::UnknownPSKIdentity => "unknown_psk_identity",
        A::CertificateRequired => "certificate_required",
        A::NoApplicationProtocol => "no_application_protocol",
        A::EncryptedClientHelloRequired => "ech_required",
        _ => return format!("alert {code}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_names_follow_the_specification() {
        assert_eq!(alert_name(40), "handshake_failure");
        assert_eq!(alert_name(48), "unknown_ca");
        assert_eq!(alert_name(112), "unrecognized_name");
        assert_eq!(alert_name(116), "certificate_required");
        assert_eq!(alert_name(200), "alert 200");
        let rustls_name = u8::from(rustls::AlertDescription::UnknownPSKIdentity);
        assert_eq!(alert_name(rustls_name), "unknown_psk_identity");
    }
}

//! What TLS puts on the wire, by name: record sizes, content types, alert levels and
//! descriptions. Below the engines and the session, which all use it.

/// The largest plaintext of one record (RFC 8446, 5.1).
pub(crate) const MAX_FRAGMENT: usize = 1 << 14;

/// The size of one full TLS record on the wire: 16 KiB of plaintext plus the largest
/// overhead a record may carry.
pub const MAX_RECORD_WIRE_SIZE: usize = MAX_FRAGMENT + 2048 + 5;

/// The size of a record header: content type, version, length.
pub(crate) const RECORD_HEADER: usize = 5;

/// Record content types (RFC 8446, 5.1), as rustls's `ContentType` numbers them.
#[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
pub(crate) mod content {
    pub(crate) const CHANGE_CIPHER_SPEC: u8 = 20;
    pub(crate) const ALERT: u8 = 21;
    pub(crate) const HANDSHAKE: u8 = 22;
    pub(crate) const APPLICATION_DATA: u8 = 23;
}

/// Handshake message types (RFC 8446, 4), as rustls's `HandshakeType` numbers them.
#[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
pub(crate) mod handshake {
    pub(crate) const NEW_SESSION_TICKET: u8 = 4;
    pub(crate) const KEY_UPDATE: u8 = 24;
}

/// Alert levels and descriptions (RFC 8446, 6), as rustls's `AlertDescription` numbers
/// the descriptions.
#[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
pub(crate) mod alert {
    pub(crate) const WARNING: u8 = 1;
    pub(crate) const FATAL: u8 = 2;
    pub(crate) const CLOSE_NOTIFY: u8 = 0;
    pub(crate) const UNEXPECTED_MESSAGE: u8 = 10;
    pub(crate) const BAD_RECORD_MAC: u8 = 20;
    pub(crate) const RECORD_OVERFLOW: u8 = 22;
    pub(crate) const ILLEGAL_PARAMETER: u8 = 47;
    pub(crate) const DECODE_ERROR: u8 = 50;
    pub(crate) const INTERNAL_ERROR: u8 = 80;
    pub(crate) const USER_CANCELED: u8 = 90;
}

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

    /// The codes named here are rustls's: one numbering for the whole crate.
    #[test]
    fn codes_are_rustls_codes() {
        use rustls::{AlertDescription as A, ContentType as C, HandshakeType as H};
        assert_eq!(content::CHANGE_CIPHER_SPEC, u8::from(C::ChangeCipherSpec));
        assert_eq!(content::ALERT, u8::from(C::Alert));
        assert_eq!(content::HANDSHAKE, u8::from(C::Handshake));
        assert_eq!(content::APPLICATION_DATA, u8::from(C::ApplicationData));
        assert_eq!(handshake::NEW_SESSION_TICKET, u8::from(H::NewSessionTicket));
        assert_eq!(handshake::KEY_UPDATE, u8::from(H::KeyUpdate));
        for (code, name) in [
            (alert::CLOSE_NOTIFY, A::CloseNotify),
            (alert::UNEXPECTED_MESSAGE, A::UnexpectedMessage),
            (alert::BAD_RECORD_MAC, A::BadRecordMac),
            (alert::RECORD_OVERFLOW, A::RecordOverflow),
            (alert::ILLEGAL_PARAMETER, A::IllegalParameter),
            (alert::DECODE_ERROR, A::DecodeError),
            (alert::INTERNAL_ERROR, A::InternalError),
            (alert::USER_CANCELED, A::UserCanceled),
        ] {
            assert_eq!(code, u8::from(name), "{name:?}");
        }
    }

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

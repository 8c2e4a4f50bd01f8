/**
 * enclavekit/native: AF_VSOCK and AF_UNIX stream sockets as Node Duplex streams, the Nitro Secure
 * Module, the SEV-SNP guest interfaces and batched AES-256-GCM. Importing never fails; functions that
 * need the compiled addon throw ERR_NATIVE_UNAVAILABLE (see nativeStatus()) when it is missing.
 */
export { NativeError, fromSystemError } from './errors.js';
export type { NativeErrorCode, NativeErrorOptions } from './errors.js';
export { nativeBinding, nativeStatus, requireBinding } from './binding.js';
export type { NativeBinding, SocketBinding, DeviceBinding, GcmBinding, SockHandle, SockEventHandler } from './binding.js';
export {
  NativeStream, NativeServer, SocketApi, parseEndpoint, formatEndpoint, listenUnix, listenVsock, connectUnix, connectVsock,
  listen, connect, VMADDR_CID_ANY, VMADDR_PORT_ANY, VMADDR_CID_HOST, UNIX_PATH_MAX,
} from './socket.js';
export type { Endpoint, StreamOptions, ListenOptions } from './socket.js';
export {
  NsmClient, NsmDeviceTransport, NsmError, openNsm, encodeNsmRequest, decodeNsmResponse, NSM_DEVICE,
  NSM_REQUEST_MAX_SIZE, NSM_RESPONSE_MAX_SIZE, NSM_ATTESTATION_FIELD_MAX, NSM_MAX_PCRS,
} from './nsm.js';
export type { NsmTransport, NsmRequest, NsmDescription, NsmErrorName } from './nsm.js';
export { tsmSevReport, TSM_REPORT_ROOT, SNP_REPORT_SIZE } from './tsm.js';
export type { TsmFs, TsmReportOptions, TsmReport } from './tsm.js';
export { snpGetExtReport, SevGuestError, SEV_GUEST_DEVICE } from './sevguest.js';
export type { SnpExtReport } from './sevguest.js';
export {
  FieldDecryptor, GcmBatchResult, decryptFields, packFields, nativeGcmCeiling, GCM_KEY_LENGTH, GCM_IV_LENGTH, GCM_TAG_LENGTH,
} from './gcm.js';
export type { GcmField, PackedFields, FieldDecryptorOptions } from './gcm.js';

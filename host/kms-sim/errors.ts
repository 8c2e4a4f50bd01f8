/**
 * A KMS service error as AWS sends it: the `__type` name (also in `x-amzn-ErrorType`), a message and
 * the HTTP status. These never leave the simulator as exceptions; the server turns them into
 * responses, and the AWS SDK on the other side turns them back into its own exception classes.
 */
export type KmsErrorType =
  | 'AccessDeniedException'
  | 'AlreadyExistsException'
  | 'DryRunOperationException'
  | 'ExpiredTokenException'
  | 'IncompleteSignatureException'
  | 'IncorrectKeyException'
  | 'InvalidAliasNameException'
  | 'InvalidArnException'
  | 'InvalidCiphertextException'
  | 'InvalidMarkerException'
  | 'InvalidSignatureException'
  | 'KMSInternalException'
  | 'MalformedPolicyDocumentException'
  | 'MissingAuthenticationTokenException'
  | 'NotFoundException'
  | 'SerializationException'
  | 'UnknownOperationException'
  | 'UnrecognizedClientException'
  | 'UnsupportedOperationException'
  | 'ValidationException';

export class KmsFault extends Error {
  override name = 'KmsFault';
  constructor(
    readonly type: KmsErrorType,
    message: string,
    readonly status = type === 'KMSInternalException' ? 500 : type === 'DryRunOperationException' ? 412 : 400,
  ) {
    super(message);
  }
}

export const fault = (type: KmsErrorType, message: string, status?: number): KmsFault => new KmsFault(type, message, status);

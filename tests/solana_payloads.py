"""Test helper: Solana payloads as Tatum queues them (hex of a compiled legacy message with the dummy blockhash,
plus `mintPK` for a new mint), with the SPL token and associated-token-account instructions written out by
hand from their published layouts (the `spl` Python package conflicts with our pins).
"""

from __future__ import annotations

import json

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer

DUMMY_BLOCKHASH = Hash.from_string("7WyEshBZcZwEbJsvSeGgCkSNMxxxFAym3x7Cuj6UjAUE")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
RENT_SYSVAR = Pubkey.from_string("SysvarRent111111111111111111111111111111111")
MINT_SIZE = 82


def payload(instructions: list[Instruction], fee_payer: Pubkey, **extra: str) -> str:
    """A `serializedTransaction`: {"txData": hex of the message, **extra}."""
    message = Message.new_with_blockhash(instructions, fee_payer, DUMMY_BLOCKHASH)
    return json.dumps({"txData": bytes(message).hex(), **extra})


def sol_transfer(source: Pubkey, destination: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source, to_pubkey=destination, lamports=lamports))


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    address, _ = Pubkey.find_program_address([bytes(owner), bytes(TOKEN_PROGRAM), bytes(mint)], ATA_PROGRAM)
    return address


def create_associated_token_account(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    """The associated token account program's Create (empty data), with the accounts Tatum's SDK passes."""
    accounts = [AccountMeta(payer, True, True), AccountMeta(associated_token_address(owner, mint), False, True),
                AccountMeta(owner, False, False), AccountMeta(mint, False, False),
                AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(TOKEN_PROGRAM, False, False),
                AccountMeta(RENT_SYSVAR, False, False)]
    return Instruction(ATA_PROGRAM, b"", accounts)


def initialize_mint(mint: Pubkey, decimals: int, authority: Pubkey, freeze: Pubkey) -> Instruction:
    """SPL token InitializeMint (0): decimals, mint authority, COption freeze authority; rent sysvar."""
    data = bytes([0, decimals]) + bytes(authority) + b"\x01" + bytes(freeze)
    return Instruction(TOKEN_PROGRAM, data, [AccountMeta(mint, False, True), AccountMeta(RENT_SYSVAR, False, False)])


def mint_to(mint: Pubkey, account: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    """SPL token MintTo (7): u64 amount."""
    return Instruction(TOKEN_PROGRAM, bytes([7]) + amount.to_bytes(8, "little"),
                       [AccountMeta(mint, False, True), AccountMeta(account, False, True),
                        AccountMeta(authority, True, False)])


def token_transfer(source: Pubkey, destination: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    """SPL token Transfer (3): u64 amount."""
    return Instruction(TOKEN_PROGRAM, bytes([3]) + amount.to_bytes(8, "little"),
                       [AccountMeta(source, False, True), AccountMeta(destination, False, True),
                        AccountMeta(owner, True, False)])


def deploy_spl(owner: Pubkey, supply: int, rent: int, decimals: int = 6) -> tuple[str, Keypair]:
    """What Tatum queues to create an SPL token (deploySignedTransaction with a signatureId): a new mint
    account funded with `rent` (the node's getMinimumBalanceForRentExemption(82)), InitializeMint, the
    owner's associated account and MintTo, with the mint's key as `mintPK` (128 hex). Returns the payload
    and the mint's keypair."""
    mint = Keypair()
    instructions = [
        create_account(CreateAccountParams(from_pubkey=owner, to_pubkey=mint.pubkey(), lamports=rent,
                                           space=MINT_SIZE, owner=TOKEN_PROGRAM)),
        initialize_mint(mint.pubkey(), decimals, owner, owner),
        create_associated_token_account(owner, owner, mint.pubkey()),
        mint_to(mint.pubkey(), associated_token_address(owner, mint.pubkey()), owner, supply),
    ]
    return payload(instructions, owner, mintPK=bytes(mint).hex()), mint


def transfer_spl(owner: Pubkey, recipient: Pubkey, mint: Pubkey, amount: int) -> str:
    """What Tatum queues for an SPL transfer to a recipient without a token account yet."""
    instructions = [
        create_associated_token_account(owner, recipient, mint),
        token_transfer(associated_token_address(owner, mint), associated_token_address(recipient, mint), owner,
                       amount),
    ]
    return payload(instructions, owner)

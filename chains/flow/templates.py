"""tatum-js v1's Cadence transaction templates (`src/transaction/flowTransaction/index.ts` @ 886502ef), literal parts
verbatim: the bytes of each script are part of what the user signs, so they must be the original's exactly.
"""

# ruff: noqa: E501

from __future__ import annotations

from chains.flow.cadence import Template

TRANSFER = Template(
    strings=(
        'import FungibleToken from ',
        '\n  import ',
        ' from ',
        '\n\ntransaction(amount: UFix64, recipient: Address) {\n  let sentVault: @FungibleToken.Vault\n  prepare(signer: AuthAccount) {\n    let vaultRef = signer.borrow<&',
        '.Vault>(from: /storage/',
        'Vault)\n      ?? panic("failed to borrow reference to sender vault")\n\n    self.sentVault <- vaultRef.withdraw(amount: amount)\n  }\n\n  execute {\n    let receiverRef =  getAccount(recipient)\n      .getCapability(/public/',
        'Receiver)\n      .borrow<&{FungibleToken.Receiver}>()\n        ?? panic("failed to borrow reference to recipient vault")\n\n    receiverRef.deposit(from: <-self.sentVault)\n  }\n}',
    ),
    values=('FungibleToken', 'tokenName', 'tokenAddress', 'tokenName', 'tokenStorage', 'tokenStorage'),
)


CREATE_ACCOUNT = Template(
    strings=(
        'import FungibleToken from ',
        '\n  import FUSD from ',
        '\n  import TatumMultiNFT from ',
        '\n  transaction(publicKey: String) {\n    let account: AuthAccount\n    prepare(signer: AuthAccount) {\n      self.account = AuthAccount(payer: signer)\n    }\n    execute {\n      self.account.addPublicKey(publicKey.decodeHex())\n      if self.account.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath) == nil {\n\n            // create a new empty collection\n            let collection <- TatumMultiNFT.createEmptyCollection()\n\n            // save it to the account\n            self.account.save(<-collection, to: TatumMultiNFT.CollectionStoragePath)\n\n            // create a public capability for the collection\n            self.account.link<&TatumMultiNFT.Collection>(TatumMultiNFT.CollectionPublicPath, target: TatumMultiNFT.CollectionStoragePath)\n        }\n      // Add FUSD vault\n      self.account.save(<-FUSD.createEmptyVault(), to: /storage/fusdVault)\n      self.account.link<&FUSD.Vault{FungibleToken.Receiver}>(\n          /public/fusdReceiver,\n          target: /storage/fusdVault\n      )\n      self.account.link<&FUSD.Vault{FungibleToken.Balance}>(\n          /public/fusdBalance,\n          target: /storage/fusdVault\n      )\n    }\n  }\n  ',
    ),
    values=('FungibleToken', 'FUSD', 'TatumMultiNFT'),
)


ADD_PUBLIC_KEY = Template(
    strings=(
        'transaction(publicKey: String) {\nprepare(signer: AuthAccount) {\nsigner.addPublicKey(publicKey.decodeHex())\n}\n}',
    ),
    values=(),
)


MINT_NFT = Template(
    strings=(
        '\nimport TatumMultiNFT from ',
        '\n\ntransaction(recipient: Address, url: String, type: String) {\n\n    // local variable for storing the minter reference\n    let minter: &TatumMultiNFT.NFTMinter\n\n    prepare(signer: AuthAccount) {\n\n        // borrow a reference to the NFTMinter resource in storage\n        self.minter = signer.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)\n            ?? panic("Could not borrow a reference to the NFT minter")\n    }\n\n    execute {\n        // get the public account object for the recipient\n        let recipientAccount = getAccount(recipient)\n\n        // borrow the recipient\'s public NFT collection reference\n        let receiver = recipientAccount\n            .getCapability(TatumMultiNFT.CollectionPublicPath)\n            .borrow<&TatumMultiNFT.Collection>()\n            ?? panic("Could not get receiver reference to the NFT Collection")\n\n        // mint the NFT and deposit it to the recipient\'s collection\n        self.minter.mintNFT(recipient: receiver, type: type, url: url, address: recipient)\n    }\n}',
    ),
    values=('TatumMultiNFT',),
)


MINT_MULTIPLE_NFT = Template(
    strings=(
        '\nimport TatumMultiNFT from ',
        '\n\ntransaction(recipient: [Address], url: [String], type: String) {\n\n    // local variable for storing the minter reference\n    let minter: &TatumMultiNFT.NFTMinter\n\n    prepare(signer: AuthAccount) {\n\n        // borrow a reference to the NFTMinter resource in storage\n        self.minter = signer.borrow<&TatumMultiNFT.NFTMinter>(from: TatumMultiNFT.MinterStoragePath)\n            ?? panic("Could not borrow a reference to the NFT minter")\n    }\n\n    execute {\n        var a = 0;\n        while a < url.length {\n        // get the public account object for the recipient\n        let recipientAccount = getAccount(recipient[a])\n\n        // borrow the recipient\'s public NFT collection reference\n        let receiver = recipientAccount\n            .getCapability(TatumMultiNFT.CollectionPublicPath)\n            .borrow<&TatumMultiNFT.Collection>()\n            ?? panic("Could not get receiver reference to the NFT Collection")\n\n        // mint the NFT and deposit it to the recipient\'s collection\n            self.minter.mintNFT(recipient: receiver, type: type, url: url[a], address: recipient[a])\n            a = a + 1\n        }\n    }\n}',
    ),
    values=('TatumMultiNFT',),
)


BURN_NFT = Template(
    strings=(
        '\nimport TatumMultiNFT from ',
        '\n\ntransaction(withdrawID: UInt64, type: String) {\n\n    // local variable for storing the minter reference\n    let senderCollection: &TatumMultiNFT.Collection\n\n    prepare(signer: AuthAccount) {\n\n        // borrow a reference to the signer\'s NFT collection\n        self.senderCollection = signer.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath)\n            ?? panic("Could not borrow a reference to the owner\'s collection")\n\n        // check if token has correct type\n        self.senderCollection.borrowTatumNFT(id: withdrawID, type: type)\n    }\n\n    execute {\n        // withdraw the NFT from the owner\'s collection\n        let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)\n\n        // Destroy the nft\n        destroy nft\n    }\n}',
    ),
    values=('TatumMultiNFT',),
)


TRANSFER_NFT = Template(
    strings=(
        '\nimport TatumMultiNFT from ',
        '\n\ntransaction(recipient: Address, withdrawID: UInt64) {\n\n    // local variable for storing the minter reference\n    let senderCollection: &TatumMultiNFT.Collection\n\n    prepare(signer: AuthAccount) {\n\n        // borrow a reference to the signer\'s NFT collection\n        self.senderCollection = signer.borrow<&TatumMultiNFT.Collection>(from: TatumMultiNFT.CollectionStoragePath)\n            ?? panic("Could not borrow a reference to the owner\'s collection")\n\n    }\n\n    execute {\n        // get the recipients public account object\n        let recipient = getAccount(recipient)\n\n        // borrow a public reference to the receivers collection\n        let depositRef = recipient.getCapability(TatumMultiNFT.CollectionPublicPath).borrow<&TatumMultiNFT.Collection>()!\n\n        // withdraw the NFT from the owner\'s collection\n        let nft <- self.senderCollection.withdraw(withdrawID: withdrawID)\n\n        // Deposit the NFT in the recipient\'s collection\n        depositRef.deposit(token: <-nft)\n    }\n}',
    ),
    values=('TatumMultiNFT',),
)

